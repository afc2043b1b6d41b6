-- Version 9: the shoppable replay. After a show ends its products can still be bought from the
-- replay, at their regular price; those orders say so (`channel`), and what they add up to is
-- kept apart from the show's own figures (which are the post-show report and stay as they were
-- when it ended), in the same transaction as the order's move to paid or refunded. Replay
-- buyers are counted in sales_buyers under the scopes 'replay:' and 'replay:<brand id>'.
ALTER TABLE orders ADD COLUMN channel TEXT NOT NULL DEFAULT 'live';

CREATE TABLE replay_figures (
    stream_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    orders BIGINT NOT NULL,
    units BIGINT NOT NULL,
    gmv BIGINT NOT NULL,
    PRIMARY KEY (stream_id, product_id, currency)
);

-- How many times the replay was started (the replay page says so once per play).
CREATE TABLE replay_views (
    stream_id TEXT PRIMARY KEY,
    views BIGINT NOT NULL
);
