-- Version 8: the post-show report, and what the exports and brands' reports read.
-- When a stream ends, what only the room knew (its peak and unique viewers) and the units left
-- to sell are frozen here; the money figures stay in sales_figures, kept with each order.
CREATE TABLE sales_reports (
    stream_id TEXT PRIMARY KEY,
    ended_at DOUBLE PRECISION NOT NULL,
    viewers_peak BIGINT NOT NULL,
    viewers_unique BIGINT NOT NULL
);

CREATE TABLE sales_report_stock (
    stream_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    remaining BIGINT NOT NULL,
    PRIMARY KEY (stream_id, product_id)
);

-- A brand's figures across its streams over a time range.
CREATE INDEX sales_figures_product_minute ON sales_figures (product_id, minute);

-- The export walks a stream's paid and refunded orders in the order they were paid.
CREATE INDEX orders_stream_paid ON orders (stream_id, paid_at, id);
