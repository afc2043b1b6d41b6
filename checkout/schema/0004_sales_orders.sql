-- Version 4: flash sales, orders and the webhook events already handled.

-- A sale takes its quantity out of the product's stock when it starts; units it
-- does not sell go back once it is over (`returned` counts those given back).
CREATE TABLE sales (
    id TEXT NOT NULL PRIMARY KEY,
    stream_id TEXT NOT NULL REFERENCES streams (id),
    product_id TEXT NOT NULL REFERENCES products (id),
    price BIGINT NOT NULL CHECK (price >= 0),
    currency TEXT NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    per_viewer_limit INTEGER NOT NULL CHECK (per_viewer_limit > 0),
    starts_at DOUBLE PRECISION NOT NULL,
    ends_at DOUBLE PRECISION NOT NULL,
    ended_at DOUBLE PRECISION,
    returned INTEGER NOT NULL DEFAULT 0 CHECK (returned >= 0),
    settled_at DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE INDEX sales_stream ON sales (stream_id, created_at);

CREATE TABLE orders (
    id TEXT NOT NULL PRIMARY KEY,
    viewer_id TEXT NOT NULL REFERENCES accounts (id),
    stream_id TEXT NOT NULL REFERENCES streams (id),
    product_id TEXT NOT NULL REFERENCES products (id),
    sale_id TEXT REFERENCES sales (id),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    unit_price BIGINT NOT NULL CHECK (unit_price >= 0),
    amount BIGINT NOT NULL CHECK (amount >= 0),
    currency TEXT NOT NULL,
    status TEXT NOT NULL CHECK (
        status IN ('pending_payment', 'paid', 'failed', 'expired', 'canceled', 'refunded')
    ),
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    provider TEXT NOT NULL,
    intent_id TEXT,
    client_secret TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    paid_at DOUBLE PRECISION,
    UNIQUE (viewer_id, idempotency_key)
);

CREATE INDEX orders_status_expires ON orders (status, expires_at);

CREATE INDEX orders_stream_status ON orders (stream_id, status);

CREATE INDEX orders_intent ON orders (intent_id);

CREATE TABLE webhook_events (
    id TEXT NOT NULL PRIMARY KEY,
    type TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL
);
