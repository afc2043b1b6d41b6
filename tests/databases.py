"""Databases for the store suites: a SQLite file or a fresh PostgreSQL schema, with the stores on it.

`Backend` is one test's database (opened as often as a test wants, as several processes would);
`Stores` is every package's store on one driver. PostgreSQL is the real server at
LIVECART_TEST_DATABASE_URL (default: the local `test` database); when it cannot be reached
the PostgreSQL half fails, it never skips.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from checkout.catalog_sql import ProductStore
from checkout.orders_sql import OrderStore
from checkout.records import Product
from checkout.sales_sql import SaleStore
from core.accounts import AccountStore
from core.db.connect import driver_for_url
from core.db.driver import Driver
from core.db.sqlite import sqlite_path
from core.identity import Account, Role
from server.database import open_database
from streaming.records import Stream
from streaming.streams_sql import StreamStore

PG_URL = os.environ.get("LIVECART_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass(frozen=True)
class Stores:
    """Every package's store on one database, as a running server has them."""

    db: Driver
    accounts: AccountStore
    products: ProductStore
    streams: StreamStore
    sales: SaleStore
    orders: OrderStore

    @classmethod
    def on(cls, db: Driver) -> Stores:
        return cls(db, AccountStore(db), ProductStore(db), StreamStore(db), SaleStore(db), OrderStore(db))


class Backend:
    """One test's database: opens drivers on it and runs raw SQL beside them."""

    def __init__(self, name: str, url: str, admin: Any = None) -> None:
        self.name = name
        self.url = url
        self._admin = admin  # PostgreSQL: a connection whose search_path is the schema
        self._drivers: list[Driver] = []

    def new_driver(self) -> Driver:
        """An unconnected driver, closed when the test ends."""
        driver = driver_for_url(self.url)
        self._drivers.append(driver)
        return driver

    async def open(self) -> Stores:
        """A connection migrated to the newest schema, with every store on it."""
        db = await open_database(self.url)
        self._drivers.append(db)
        return Stores.on(db)

    async def raw(self, sql: str) -> None:
        """Run SQL on a connection of its own, as another program would."""
        if self._admin is not None:
            await self._admin.execute(sql)
            return
        with contextlib.closing(sqlite3.connect(sqlite_path(self.url))) as conn, conn:
            conn.execute(sql)

    async def scalar(self, sql: str) -> Any:
        if self._admin is not None:
            return await self._admin.fetchval(sql)
        with contextlib.closing(sqlite3.connect(sqlite_path(self.url))) as conn:
            return conn.execute(sql).fetchone()[0]

    async def close(self) -> None:
        for driver in self._drivers:
            await driver.close()


@contextlib.asynccontextmanager
async def sqlite_backend(tmp_path: Path) -> AsyncIterator[Backend]:
    # An absolute path, so the URL takes the sqlite:////abs/path form; the
    # missing "data" directory checks that connecting creates it.
    backend = Backend("sqlite", f"sqlite:///{tmp_path / 'data' / 'livecart.db'}")
    try:
        yield backend
    finally:
        await backend.close()


@contextlib.asynccontextmanager
async def postgres_backend() -> AsyncIterator[Backend]:
    schema = f"test_store_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(PG_URL)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        await admin.execute(f"SET search_path TO {schema}")
        sep = "&" if "?" in PG_URL else "?"
        backend = Backend("postgresql", f"{PG_URL}{sep}search_path={schema}", admin)
        try:
            yield backend
        finally:
            await backend.close()
            await admin.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await admin.close()


# -- records to test with ----------------------------------------------------------
async def make_brand(stores: Stores, name: str = "Acme") -> Account:
    return await stores.accounts.create_account(Role.BRAND, name, secrets.token_hex(16))


async def make_host(stores: Stores, name: str = "Mia") -> Account:
    return await stores.accounts.create_account(Role.HOST, name, secrets.token_hex(16))


async def make_product(stores: Stores, brand_id: str, **fields: Any) -> Product:
    values: dict[str, Any] = {
        "title": "Silk scarf",
        "price": 2900,
        "currency": "USD",
        "stock": 50,
        "image_url": "https://img.example/scarf.jpg",
        "description": "Hand-rolled edges.",
    }
    values.update(fields)
    return await stores.products.create_product(brand_id=brand_id, **values)


async def make_stream(stores: Stores, n_products: int = 2, title: str = "Show") -> Stream:
    host = await make_host(stores)
    brand = await make_brand(stores)
    products = [await make_product(stores, brand.id, title=f"P{i}") for i in range(n_products)]
    return await stores.streams.create_stream(
        host_id=host.id, title=title, product_ids=[p.id for p in products]
    )
