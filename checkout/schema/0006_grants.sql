-- Version 6: brands decide who sells their products. A host may put a brand's product in a
-- lineup, pin it or run a sale of it only with that brand's grant (max_units caps each sale's
-- quantity; NULL = no cap); a product's min_price is the lowest price a sale may ask (0 = none).
ALTER TABLE products ADD COLUMN min_price BIGINT NOT NULL DEFAULT 0 CHECK (min_price >= 0);

CREATE TABLE brand_hosts (
    brand_id TEXT NOT NULL REFERENCES accounts (id),
    host_id TEXT NOT NULL REFERENCES accounts (id),
    max_units BIGINT CHECK (max_units IS NULL OR max_units > 0),
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (brand_id, host_id)
);

CREATE INDEX brand_hosts_host_id ON brand_hosts (host_id);
