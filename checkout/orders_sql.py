"""The `orders` and `webhook_events` tables: orders as they move, and what paid orders add up to.

Stock that lives in the database moves in the same transaction as the row that explains it:
a regular (non-sale) order takes its product's units when it is placed and gives them back
when it fails, expires or is canceled. A sale's units are held by the stock (checkout/stock.py)
instead, and its rush orders are written together: one INSERT for the buys that arrive while
the last one runs (core/batch.py, the group commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import fields
from typing import Any

from checkout import figures_sql
from checkout.records import (
    STOCK_RETURNED,
    Order,
    OrderStatus,
    StreamSales,
    allowed,
)
from checkout.sales_sql import NotEnoughStock
from core.batch import Batcher
from core.db.driver import Conn, Driver, Row, StoreError, optional_float, placeholders

ORDER = "ord"  # id prefix

_FIELDS = tuple(f.name for f in fields(Order))
_COLUMNS = ", ".join(_FIELDS)
_PLACEHOLDERS = placeholders(1, len(_FIELDS))
_NEW_ORDER_TAIL = "ON CONFLICT (viewer_id, idempotency_key) DO NOTHING RETURNING id"


def _values(order: Order) -> tuple[Any, ...]:
    # Not dataclasses.astuple: it deep-copies every field, and this runs per buy.
    return tuple(order.status.value if name == "status" else getattr(order, name) for name in _FIELDS)


def _row(order: Order) -> Row:
    return dict(zip(_FIELDS, _values(order), strict=True))


def _order(row: Row) -> Order:
    floats = {k: float(row[k]) for k in ("created_at", "updated_at", "expires_at")}
    return Order(
        **{
            **row,
            **floats,
            "paid_at": optional_float(row["paid_at"]),
            "authorized_at": optional_float(row["authorized_at"]),
            "status": OrderStatus(row["status"]),
        }
    )


class HeldTooMany(Exception):
    """The viewer already holds `max_held` unpaid units in this stream."""

    def __init__(self, held: int) -> None:
        super().__init__(f"{held} units held unpaid")
        self.held = held


class OrderStore:
    """Every method is one transaction (rush orders: one per batch)."""

    # Rush orders per INSERT at most, and INSERTs running at once (the rest wait and
    # form the next batch: the group commit).
    ORDER_BATCH = 500
    ORDER_FLUSHES = 2
    DRAIN_S = 10.0

    def __init__(self, db: Driver) -> None:
        self._db = db
        self._new_orders = Batcher(
            self._insert_orders, max_batch=self.ORDER_BATCH, max_in_flight=self.ORDER_FLUSHES
        )

    async def drain(self) -> None:
        """Write the rush orders already accepted, within a bound: a database that stopped
        answering must not hold the shutdown (their buyers hear of it anyway)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._new_orders.drain(), self.DRAIN_S)

    async def create_order(
        self, order: Order, *, take_product_stock: bool, max_held: int | None = None
    ) -> Order:
        """Insert a pending order (taking product stock for a regular order in the same
        transaction: NotEnoughStock otherwise; HeldTooMany when the viewer would then hold more
        than `max_held` unpaid units in the stream). If the viewer already used this
        idempotency key, nothing is written and the order stored under it is returned."""
        if not take_product_stock:
            # A sale's units are held by the stock, not here: the rush path. Concurrent
            # buys go in together (group commit), each row on its own, no transaction:
            # the unique key turns a racing duplicate into nothing written.
            return await self._new_orders.submit(order)
        async with self._db.transaction(write=True) as conn:
            existing = await conn.fetchone(
                f"SELECT {_COLUMNS} FROM orders WHERE viewer_id = $1 AND idempotency_key = $2",
                order.viewer_id,
                order.idempotency_key,
            )
            if existing is not None:
                return _order(existing)
            if max_held is not None:
                await self._check_held(conn, order, max_held)
            taken = await conn.fetchone(
                "UPDATE products SET stock = stock - $2, updated_at = $3"
                " WHERE id = $1 AND stock >= $2 RETURNING stock",
                order.product_id,
                order.quantity,
                order.created_at,
            )
            if taken is None:
                row = await conn.fetchone("SELECT stock FROM products WHERE id = $1", order.product_id)
                raise NotEnoughStock(0 if row is None else int(row["stock"]))
            await conn.execute(f"INSERT INTO orders ({_COLUMNS}) VALUES ({_PLACEHOLDERS})", *_values(order))
        return order

    async def _check_held(self, conn: Conn, order: Order, max_held: int) -> None:
        # The viewer's row is locked first (PostgreSQL; SQLite's BEGIN IMMEDIATE already is a
        # lock), so two buys of one viewer cannot both read the same count and both pass.
        await conn.fetchone(
            f"SELECT id FROM accounts WHERE id = $1{self._db.dialect.row_lock}", order.viewer_id
        )
        row = await conn.fetchone(
            "SELECT COALESCE(SUM(quantity), 0) AS held FROM orders WHERE viewer_id = $1 AND stream_id = $2"
            " AND status = 'pending_payment' AND sale_id IS NULL AND expires_at > $3",
            order.viewer_id,
            order.stream_id,
            order.created_at,
        )
        held = int(row["held"]) if row else 0
        if held + order.quantity > max_held:
            raise HeldTooMany(held)

    async def _insert_orders(self, orders: list[Order]) -> list[Order | BaseException]:
        """One INSERT for many rush orders; each answers the order stored under its key.
        If the database refuses the batch, whatever the reason, each row is tried alone, so
        that only the buyer of the bad row hears of it. Only a database that is down (a
        StoreError) fails the batch as a whole: every row would fail alike, one by one."""
        try:
            returned = await self._db.insert_many(
                "orders", _FIELDS, [_row(order) for order in orders], _NEW_ORDER_TAIL
            )
        except StoreError:
            raise
        except Exception as exc:
            if len(orders) == 1:
                return [exc]
            return [outcome for order in orders for outcome in await self._insert_orders([order])]
        inserted = {row["id"] for row in returned}
        outcomes: list[Order | BaseException] = []
        for order in orders:
            if order.id in inserted:
                outcomes.append(order)
                continue
            existing = await self.order_by_key(order.viewer_id, order.idempotency_key)
            outcomes.append(existing or AssertionError("an order conflicted on its key but cannot be found"))
        return outcomes

    async def get_order(self, order_id: str) -> Order | None:
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM orders WHERE id = $1", order_id)
        return None if row is None else _order(row)

    async def order_by_key(self, viewer_id: str, key: str) -> Order | None:
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM orders WHERE viewer_id = $1 AND idempotency_key = $2",
            viewer_id,
            key,
        )
        return None if row is None else _order(row)

    async def order_by_intent(self, intent_id: str) -> Order | None:
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM orders WHERE intent_id = $1", intent_id)
        return None if row is None else _order(row)

    async def set_payment(self, order_id: str, intent_id: str, client_secret: str | None) -> Order | None:
        async with self._db.transaction(write=True) as conn:
            row = await conn.fetchone(
                "UPDATE orders SET intent_id = $2, client_secret = $3, updated_at = $4"
                f" WHERE id = $1 AND (intent_id IS NULL OR intent_id = $2) RETURNING {_COLUMNS}",
                order_id,
                intent_id,
                client_secret,
                time.time(),
            )
        return None if row is None else _order(row)

    async def transition(
        self, order_id: str, to: OrderStatus, *, unless_claimed: bool = False
    ) -> tuple[Order, bool] | None:
        """Move an order to `to` if the table allows it from where it is (and, with
        `unless_claimed`, only while settlement has not claimed it: see `claim`).

        Returns (order as it now is, whether this call moved it); a refused move returns
        the order unchanged with False. A regular order that fails, expires or is canceled
        gives its units back to the product in the same transaction."""
        now = time.time()
        async with self._db.transaction(write=True) as conn:
            row = await conn.fetchone(
                f"SELECT {_COLUMNS} FROM orders WHERE id = $1{self._db.dialect.row_lock}", order_id
            )
            if row is None:
                return None
            order = _order(row)
            if order.status == to or not allowed(order.status, to):
                return order, False
            if unless_claimed and order.authorized_at is not None:
                return order, False
            moved = await conn.fetchone(
                "UPDATE orders SET status = $2, updated_at = $3,"
                " paid_at = CASE WHEN $2 = 'paid' THEN $3 ELSE paid_at END"
                f" WHERE id = $1 AND status = $4 RETURNING {_COLUMNS}",
                order_id,
                to.value,
                now,
                order.status.value,
            )
            if moved is None:
                return order, False
            if to is OrderStatus.PAID:
                await figures_sql.count_sale(conn, _order(moved), +1)
            elif to is OrderStatus.REFUNDED:  # only a paid order is refunded
                await figures_sql.count_sale(conn, order, -1)
            if to in STOCK_RETURNED and order.sale_id is None:
                await conn.execute(
                    "UPDATE products SET stock = stock + $2, updated_at = $3 WHERE id = $1",
                    order.product_id,
                    order.quantity,
                    now,
                )
            return _order(moved), True

    async def claim(self, order_id: str) -> Order | None:
        """Settlement takes a pending order whose money is held: `authorized_at` is set (the
        first time), and from then on moves `unless_claimed` leave it alone. Returns the
        order as it now is: claimed if it was pending, else whatever it became first."""
        async with self._db.transaction(write=True) as conn:
            await conn.execute(
                "UPDATE orders SET authorized_at = $2, updated_at = $2"
                " WHERE id = $1 AND status = 'pending_payment' AND authorized_at IS NULL",
                order_id,
                time.time(),
            )
            row = await conn.fetchone(f"SELECT {_COLUMNS} FROM orders WHERE id = $1", order_id)
        return None if row is None else _order(row)

    async def pending_orders(self, *, expired_by: float | None = None, limit: int = 500) -> list[Order]:
        """Orders waiting for payment; with expired_by, only those past expires_at that
        settlement has not claimed (a claimed order is settlement's to finish)."""
        if expired_by is None:
            rows = await self._db.fetchall(
                f"SELECT {_COLUMNS} FROM orders WHERE status = 'pending_payment'"
                " ORDER BY created_at LIMIT $1",
                limit,
            )
        else:
            rows = await self._db.fetchall(
                f"SELECT {_COLUMNS} FROM orders WHERE status = 'pending_payment' AND expires_at <= $1"
                " AND authorized_at IS NULL ORDER BY expires_at LIMIT $2",
                expired_by,
                limit,
            )
        return [_order(row) for row in rows]

    async def stream_sales(self, stream_id: str, brand_id: str | None = None) -> StreamSales:
        return await figures_sql.stream_sales(self._db, stream_id, brand_id)

    async def replay_sales(self, stream_id: str, brand_id: str | None = None) -> StreamSales:
        return await figures_sql.replay_sales(self._db, stream_id, brand_id)

    async def webhook_event_seen(self, event_id: str) -> bool:
        row = await self._db.fetchone("SELECT id FROM webhook_events WHERE id = $1", event_id)
        return row is not None

    async def record_webhook_event(self, event_id: str, event_type: str) -> bool:
        """True the first time an event id is seen; False for a redelivery."""
        async with self._db.transaction(write=True) as conn:
            row = await conn.fetchone(
                "INSERT INTO webhook_events (id, type, received_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (id) DO NOTHING RETURNING id",
                event_id,
                event_type,
                time.time(),
            )
        return row is not None
