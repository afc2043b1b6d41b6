"""The `sales` table: flash sales, and the product stock each takes and gives back.

A sale takes its quantity out of the product's stock when it starts, in the same transaction
as its row; units it does not sell go back once it is over (`returned` counts those given
back), so stock in the database always has a row that explains it.
"""

from __future__ import annotations

import time
from dataclasses import astuple, fields

from checkout.records import Sale
from core import ids
from core.db.driver import Driver, Row, optional_float, placeholders

SALE = "sale"  # id prefix

_COLUMNS = ", ".join(f.name for f in fields(Sale))
_PLACEHOLDERS = placeholders(1, len(fields(Sale)))


class NotEnoughStock(Exception):
    def __init__(self, available: int) -> None:
        super().__init__(f"only {available} in stock")
        self.available = available


class SaleRunning(Exception):
    def __init__(self, sale_id: str) -> None:
        super().__init__(f"sale {sale_id} is still running")
        self.sale_id = sale_id


def _sale(row: Row) -> Sale:
    return Sale(
        **{
            **row,
            "starts_at": float(row["starts_at"]),
            "ends_at": float(row["ends_at"]),
            "ended_at": optional_float(row["ended_at"]),
            "settled_at": optional_float(row["settled_at"]),
            "created_at": float(row["created_at"]),
        }
    )


class SaleStore:
    """Every method is one transaction."""

    def __init__(self, db: Driver) -> None:
        self._db = db

    async def create_sale(
        self,
        *,
        stream_id: str,
        product_id: str,
        price: int,
        currency: str,
        quantity: int,
        per_viewer_limit: int,
        duration_s: float,
    ) -> Sale:
        """Start a sale, taking its units out of the product's stock, unless the stream
        already has one running (SaleRunning) or the product lacks the units (NotEnoughStock)."""
        now = time.time()
        sale = Sale(
            id=ids.new_id(SALE),
            stream_id=stream_id,
            product_id=product_id,
            price=price,
            currency=currency,
            quantity=quantity,
            per_viewer_limit=per_viewer_limit,
            starts_at=now,
            ends_at=now + duration_s,
            ended_at=None,
            returned=0,
            settled_at=None,
            created_at=now,
        )
        async with self._db.transaction(write=True) as conn:
            running = await conn.fetchone(
                "SELECT id FROM sales WHERE stream_id = $1 AND ended_at IS NULL AND ends_at > $2",
                stream_id,
                now,
            )
            if running is not None:
                raise SaleRunning(running["id"])
            taken = await conn.fetchone(
                "UPDATE products SET stock = stock - $2, updated_at = $3"
                " WHERE id = $1 AND stock >= $2 RETURNING stock",
                product_id,
                quantity,
                now,
            )
            if taken is None:
                row = await conn.fetchone("SELECT stock FROM products WHERE id = $1", product_id)
                raise NotEnoughStock(0 if row is None else int(row["stock"]))
            await conn.execute(
                f"INSERT INTO sales ({_COLUMNS}) VALUES ({_PLACEHOLDERS})",
                *astuple(sale),
            )
        return sale

    async def get_sale(self, sale_id: str) -> Sale | None:
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM sales WHERE id = $1", sale_id)
        return None if row is None else _sale(row)

    async def current_sale(self, stream_id: str, now: float) -> Sale | None:
        """The stream's sale that still takes reservations, if any."""
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM sales WHERE stream_id = $1 AND ended_at IS NULL AND ends_at > $2"
            " ORDER BY created_at DESC LIMIT 1",
            stream_id,
            now,
        )
        return None if row is None else _sale(row)

    async def running_of_brand(self, brand_id: str, now: float) -> list[Sale]:
        """Sales of the brand's products that still take reservations."""
        columns = ", ".join(f"s.{c.strip()}" for c in _COLUMNS.split(","))
        rows = await self._db.fetchall(
            f"SELECT {columns} FROM sales s JOIN products p ON p.id = s.product_id"
            " WHERE p.brand_id = $1 AND s.ended_at IS NULL AND s.ends_at > $2",
            brand_id,
            now,
        )
        return [_sale(row) for row in rows]

    async def end_sale(self, sale_id: str, at: float) -> tuple[Sale, bool] | None:
        """Stop a sale's reservations at `at`. Returns the sale and whether this call ended
        it (the first end stands; a sale already over by its countdown ends at ends_at)."""
        async with self._db.transaction(write=True) as conn:
            row = await conn.fetchone(
                "UPDATE sales SET ended_at = CASE WHEN ends_at < $2 THEN ends_at ELSE $2 END"
                f" WHERE id = $1 AND ended_at IS NULL RETURNING {_COLUMNS}",
                sale_id,
                at,
            )
            if row is not None:
                return _sale(row), True
            row = await conn.fetchone(f"SELECT {_COLUMNS} FROM sales WHERE id = $1", sale_id)
        return None if row is None else (_sale(row), False)

    async def sales_to_settle(self, now: float, limit: int = 100) -> list[Sale]:
        """Sales past their close that are not settled yet (units may still come back)."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM sales WHERE (ended_at IS NOT NULL OR ends_at <= $1)"
            " AND settled_at IS NULL ORDER BY ends_at LIMIT $2",
            now,
            limit,
        )
        return [_sale(row) for row in rows]

    async def return_sale_stock(self, sale_id: str, unsold: int, *, settled: bool) -> int:
        """Give a closed sale's unsold units back to the product; only what was not given
        back before moves, so calling it again with the same count moves nothing. `settled`:
        no hold is left, so the count is final."""
        async with self._db.transaction(write=True) as conn:
            row = await conn.fetchone(
                f"SELECT product_id, returned FROM sales WHERE id = $1{self._db.dialect.row_lock}", sale_id
            )
            if row is None:
                return 0
            delta = max(0, unsold - int(row["returned"]))
            await conn.execute(
                "UPDATE sales SET returned = $2, settled_at = $3 WHERE id = $1",
                sale_id,
                int(row["returned"]) + delta,
                time.time() if settled else None,
            )
            if delta == 0:
                return 0
            await conn.execute(
                "UPDATE products SET stock = stock + $2, updated_at = $3 WHERE id = $1",
                row["product_id"],
                delta,
                time.time(),
            )
            return delta
