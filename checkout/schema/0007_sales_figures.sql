-- Version 7: sales figures kept as orders are paid and refunded, in the same transaction as the
-- order's move (checkout/orders_sql.py), so reading them costs the same at 100 orders as at
-- 100,000 and they can never drift from the orders table. Rows are per stream, product,
-- currency and the minute the orders were paid in.
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

-- A buyer per stream and scope ('' the whole stream, else a brand's id), with its paid orders
-- there; and how many buyers each scope has, moved when a buyer's first order is paid there or
-- its last one refunded, so reading a count is one row however many buyers there are.
CREATE TABLE sales_buyers (
    stream_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    viewer_id TEXT NOT NULL,
    orders BIGINT NOT NULL,
    PRIMARY KEY (stream_id, scope, viewer_id)
);

CREATE TABLE sales_buyer_counts (
    stream_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    buyers BIGINT NOT NULL,
    PRIMARY KEY (stream_id, scope)
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

INSERT INTO sales_buyers (stream_id, scope, viewer_id, orders)
SELECT stream_id, '', viewer_id, COUNT(*) FROM orders WHERE status = 'paid'
GROUP BY stream_id, viewer_id;

INSERT INTO sales_buyers (stream_id, scope, viewer_id, orders)
SELECT o.stream_id, p.brand_id, o.viewer_id, COUNT(*)
FROM orders o JOIN products p ON p.id = o.product_id WHERE o.status = 'paid'
GROUP BY o.stream_id, p.brand_id, o.viewer_id;

INSERT INTO sales_buyer_counts (stream_id, scope, buyers)
SELECT stream_id, scope, COUNT(*) FROM sales_buyers GROUP BY stream_id, scope;
