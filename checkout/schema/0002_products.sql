-- Version 2: the catalog. A product belongs to one brand account.
-- Money is an integer in minor units; stock is whole units.

CREATE TABLE products (
    id TEXT NOT NULL PRIMARY KEY,
    brand_id TEXT NOT NULL REFERENCES accounts (id),
    title TEXT NOT NULL,
    price BIGINT NOT NULL CHECK (price >= 0),
    currency TEXT NOT NULL,
    stock BIGINT NOT NULL CHECK (stock >= 0),
    image_url TEXT,
    description TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

CREATE INDEX products_brand_id ON products (brand_id);
