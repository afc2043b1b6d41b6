"""The `products` table: brands' products and the stock that is not held by a sale."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import astuple, fields
from typing import Any

from checkout.records import PRODUCT_MUTABLE_FIELDS, Product
from core import ids
from core.accounts import UnknownAccount
from core.db.driver import ConstraintViolation, Driver, Row, chunks, placeholders

PRODUCT = "prd"  # id prefix

# Product fields are named after their columns.
_COLUMNS = ", ".join(field.name for field in fields(Product))

_TEXT = frozenset({"title", "currency"})
_OPTIONAL_TEXT = frozenset({"image_url", "description"})
_COUNTS = frozenset({"price", "stock", "min_price"})


def _check_fields(values: Mapping[str, Any]) -> None:
    """Refuse values the schema could not hold faithfully (SQLite would store a
    float price or a text stock without complaint), with one message on both."""
    for key, value in values.items():
        if key in _COUNTS:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"product {key} must be a non-negative integer, got {value!r}")
        elif key in _TEXT:
            if not isinstance(value, str) or not value:
                raise ValueError(f"product {key} must be a non-empty string, got {value!r}")
        elif key in _OPTIONAL_TEXT and not (value is None or isinstance(value, str)):
            raise ValueError(f"product {key} must be a string or None, got {value!r}")
    currency = values.get("currency")
    if currency is not None and not (len(currency) == 3 and currency.isalpha() and currency.isupper()):
        raise ValueError(f"currency must be an upper-case ISO-4217 code, got {currency!r}")


def _product(row: Row) -> Product:
    # float(): a timestamp column may hand back an int when a row was written by hand.
    return Product(
        **{
            **row,
            "created_at": float(row["created_at"]),
            "updated_at": float(row["updated_at"]),
            "min_price": int(row["min_price"]),
        }
    )


class ProductStore:
    """Every method is one transaction."""

    def __init__(self, db: Driver) -> None:
        self._db = db

    async def create_product(
        self,
        *,
        brand_id: str,
        title: str,
        price: int,
        currency: str,
        stock: int,
        image_url: str | None,
        description: str | None,
        min_price: int = 0,
    ) -> Product:
        now = time.time()
        product = Product(
            id=ids.new_id(PRODUCT),
            brand_id=brand_id,
            title=title,
            price=price,
            currency=currency,
            stock=stock,
            image_url=image_url,
            description=description,
            created_at=now,
            updated_at=now,
            min_price=min_price,
        )
        _check_fields({name: getattr(product, name) for name in PRODUCT_MUTABLE_FIELDS})
        try:
            async with self._db.transaction(write=True) as conn:
                await conn.execute(
                    f"INSERT INTO products ({_COLUMNS}) VALUES ({placeholders(1, len(fields(Product)))})",
                    *astuple(product),
                )
        except ConstraintViolation as exc:
            if exc.kind == "foreign_key":
                raise UnknownAccount(brand_id) from exc
            raise
        return product

    async def get_product(self, product_id: str) -> Product | None:
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM products WHERE id = $1", product_id)
        return None if row is None else _product(row)

    async def get_products(self, product_ids: Sequence[str]) -> list[Product]:
        """The products that exist among product_ids, in the order asked."""
        wanted = list(dict.fromkeys(product_ids))  # first occurrence keeps its place
        found: dict[str, Product] = {}
        async with self._db.transaction(write=False) as conn:
            for chunk in chunks(wanted):
                rows = await conn.fetchall(
                    f"SELECT {_COLUMNS} FROM products WHERE id IN ({placeholders(1, len(chunk))})", *chunk
                )
                found.update((row["id"], _product(row)) for row in rows)
        return [found[product_id] for product_id in wanted if product_id in found]

    async def update_product(self, product_id: str, changes: Mapping[str, Any]) -> Product | None:
        """Apply changes (keys from PRODUCT_MUTABLE_FIELDS); None if no such product."""
        unknown = set(changes) - PRODUCT_MUTABLE_FIELDS
        if unknown:
            raise ValueError(f"product fields that cannot be changed: {', '.join(sorted(unknown))}")
        _check_fields(changes)
        if not changes:
            return await self.get_product(product_id)
        columns = sorted(changes)
        # Column names come only from PRODUCT_MUTABLE_FIELDS (checked above), so
        # formatting them into the statement cannot inject anything.
        assignments = ", ".join(f"{column} = ${n}" for n, column in enumerate(columns, start=3))
        async with self._db.transaction(write=True) as conn:
            row = await conn.fetchone(
                f"UPDATE products SET updated_at = $2, {assignments} WHERE id = $1 RETURNING {_COLUMNS}",
                product_id,
                time.time(),
                *(changes[column] for column in columns),
            )
        return None if row is None else _product(row)
