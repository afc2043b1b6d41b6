-- Version 1: who may call the API, and small key/value facts about the install
-- (e.g. the hash of the admin token generated at first start).
--
-- Portable SQL (SQLite 3.40+ and PostgreSQL 15+). Statements end with ';' and
-- no string literal in this file contains one: the runner splits on it.

CREATE TABLE accounts (
    id TEXT NOT NULL PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('admin', 'host', 'brand', 'viewer')),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE UNIQUE INDEX accounts_token_hash ON accounts (token_hash);

CREATE TABLE meta (
    key TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);
