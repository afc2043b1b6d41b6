-- Version 3: streams and the products each one showcases, in the host's order.

CREATE TABLE streams (
    id TEXT NOT NULL PRIMARY KEY,
    host_id TEXT NOT NULL REFERENCES accounts (id),
    title TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('scheduled', 'live', 'ended')),
    pinned_product_id TEXT REFERENCES products (id),
    created_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    ended_at DOUBLE PRECISION
);

CREATE INDEX streams_state ON streams (state);

CREATE INDEX streams_host_id ON streams (host_id);

-- The position column keeps the host's order; a product appears once per stream.
CREATE TABLE stream_products (
    stream_id TEXT NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    product_id TEXT NOT NULL REFERENCES products (id),
    PRIMARY KEY (stream_id, position),
    UNIQUE (stream_id, product_id)
);
