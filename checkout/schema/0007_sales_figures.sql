-- Version 7: sales figures kept as orders are paid and refunded, in the same transaction as the
-- order's move (checkout/orders_sql.py), so reading them costs the same at 100 orders as at
-- 100,000 and they can never drift from the orders table. Rows are per stream, product,
-- currency and the minute the orders were paid in; buyers per stream, product and viewer.
CREATE TABLE sales_figures (
    stream_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    minute DOUBLE PRECISION NOT NULL,
    orders BIGINT NOT NULL,
    units BIGINT NOT NULL,
    gmv BIGINT NOT NULL,
    PRIMARY KEY (stream_id, product_id, currency, minute)
);

CREATE TABLE sales_buyers (
    stream_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    viewer_id TEXT NOT NULL,
    orders BIGINT NOT NULL,
    PRIMARY KEY (stream_id, product_id, viewer_id)
);

-- The orders already paid, counted once. The minute is the floor of paid_at / 60, written so
-- both databases agree (PostgreSQL's cast rounds, SQLite's truncates).
INSERT INTO sales_figures (stream_id, product_id, currency, minute, orders, units, gmv)
SELECT stream_id, product_id, currency, m * 60, COUNT(*), SUM(quantity), SUM(amount)
FROM (
    SELECT stream_id, product_id, currency, quantity, amount,
        CASE WHEN CAST(paid_at / 60 AS INTEGER) > paid_at / 60
            THEN CAST(paid_at / 60 AS INTEGER) - 1 ELSE CAST(paid_at / 60 AS INTEGER) END AS m
    FROM orders WHERE status = 'paid'
) AS paid
GROUP BY stream_id, product_id, currency, m;

INSERT INTO sales_buyers (stream_id, product_id, viewer_id, orders)
SELECT stream_id, product_id, viewer_id, COUNT(*) FROM orders WHERE status = 'paid'
GROUP BY stream_id, product_id, viewer_id;
