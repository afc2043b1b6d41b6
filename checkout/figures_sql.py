"""The kept sales figures: what paid orders add up to, per stream, product, currency and minute
(the show's) and per stream, product and currency (its replay's), with the buyers of each scope.

`count_sale` runs inside the transaction that moves an order to paid or refunded
(checkout/orders_sql.py), so the figures never drift from the orders; the reads cost what the
stream's products and minutes cost, never its orders or buyers.
"""

from __future__ import annotations

import math
from typing import Any

from checkout.records import REPLAY, MinuteSales, Order, ProductSales, StreamSales
from core.db.driver import Conn, Driver, Row

REPLAY_SCOPE = "replay:"  # sales_buyers scopes of the replay's buyers: 'replay:', 'replay:<brand id>'


async def count_sale(conn: Conn, order: Order, sign: int) -> None:
    """Add a paid order to the stream's figures (sign +1), or take a refunded one back out (-1):
    a live order in the minute it was paid in, a replay's apart from the show's."""
    if order.channel == REPLAY:
        await conn.execute(
            "INSERT INTO replay_figures (stream_id, product_id, currency, orders, units, gmv)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (stream_id, product_id, currency)"
            " DO UPDATE SET orders = replay_figures.orders + excluded.orders,"
            " units = replay_figures.units + excluded.units, gmv = replay_figures.gmv + excluded.gmv",
            order.stream_id,
            order.product_id,
            order.currency,
            sign,
            sign * order.quantity,
            sign * order.amount,
        )
    else:
        assert order.paid_at is not None
        await conn.execute(
            "INSERT INTO sales_figures (stream_id, product_id, currency, minute, orders, units, gmv)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (stream_id, product_id, currency, minute)"
            " DO UPDATE SET orders = sales_figures.orders + excluded.orders,"
            " units = sales_figures.units + excluded.units, gmv = sales_figures.gmv + excluded.gmv",
            order.stream_id,
            order.product_id,
            order.currency,
            float(math.floor(order.paid_at / 60) * 60),
            sign,
            sign * order.quantity,
            sign * order.amount,
        )
    brand = await conn.fetchone("SELECT brand_id FROM products WHERE id = $1", order.product_id)
    prefix = REPLAY_SCOPE if order.channel == REPLAY else ""
    for scope in ["", *([brand["brand_id"]] if brand else [])]:  # the whole stream, the brand
        row = await conn.fetchone(
            "INSERT INTO sales_buyers (stream_id, scope, viewer_id, orders) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (stream_id, scope, viewer_id)"
            " DO UPDATE SET orders = sales_buyers.orders + excluded.orders RETURNING orders",
            order.stream_id,
            prefix + scope,
            order.viewer_id,
            sign,
        )
        assert row is not None
        if int(row["orders"]) == (1 if sign > 0 else 0):  # a buyer's first order here, or last one gone
            await conn.execute(
                "INSERT INTO sales_buyer_counts (stream_id, scope, buyers) VALUES ($1, $2, $3)"
                " ON CONFLICT (stream_id, scope)"
                " DO UPDATE SET buyers = sales_buyer_counts.buyers + excluded.buyers",
                order.stream_id,
                prefix + scope,
                sign,
            )


def _scope(stream_id: str, brand_id: str | None) -> tuple[str, list[Any]]:
    """A figures table's rows of one stream, or of one brand's products in it."""
    if brand_id is None:
        return "stream_id = $1", [stream_id]
    return "stream_id = $1 AND product_id IN (SELECT id FROM products WHERE brand_id = $2)", [
        stream_id,
        brand_id,
    ]


async def _buyers(conn: Conn, stream_id: str, scope: str) -> int:
    row = await conn.fetchone(
        "SELECT buyers FROM sales_buyer_counts WHERE stream_id = $1 AND scope = $2", stream_id, scope
    )
    return int(row["buyers"]) if row else 0


def _sales(
    stream_id: str, products: list[Row], buyers: int, timeline: tuple[MinuteSales, ...]
) -> StreamSales:
    by_product = tuple(
        ProductSales(r["product_id"], r["currency"], int(r["orders"]), int(r["units"]), int(r["gmv"]))
        for r in products
    )
    return StreamSales(
        stream_id=stream_id,
        orders=sum(p.orders for p in by_product),
        units=sum(p.units for p in by_product),
        buyers=buyers,
        products=by_product,
        timeline=timeline,
    )


async def stream_sales(db: Driver, stream_id: str, brand_id: str | None = None) -> StreamSales:
    """What the show's paid orders add up to, for all its products or a brand's only:
    read from the figures kept with each payment and refund, so its cost follows the
    stream's products and minutes, never its orders or buyers. One read transaction, so
    the parts agree with each other."""
    scope, args = _scope(stream_id, brand_id)
    async with db.transaction(write=False) as conn:
        products = await conn.fetchall(
            "SELECT product_id, currency, SUM(orders) AS orders, SUM(units) AS units, SUM(gmv) AS gmv"
            f" FROM sales_figures WHERE {scope} GROUP BY product_id, currency HAVING SUM(orders) > 0"
            " ORDER BY product_id, currency",
            *args,
        )
        buyers = await _buyers(conn, stream_id, brand_id or "")
        minutes = await conn.fetchall(
            "SELECT minute, currency, SUM(orders) AS orders, SUM(gmv) AS gmv"
            f" FROM sales_figures WHERE {scope} GROUP BY minute, currency HAVING SUM(orders) > 0"
            " ORDER BY minute, currency",
            *args,
        )
    timeline = tuple(
        MinuteSales(float(r["minute"]), r["currency"], int(r["orders"]), int(r["gmv"])) for r in minutes
    )
    return _sales(stream_id, products, buyers, timeline)


async def replay_sales(db: Driver, stream_id: str, brand_id: str | None = None) -> StreamSales:
    """What the replay's paid orders add up to (no minutes: a replay has no clock of its own)."""
    scope, args = _scope(stream_id, brand_id)
    async with db.transaction(write=False) as conn:
        products = await conn.fetchall(
            "SELECT product_id, currency, orders, units, gmv"
            f" FROM replay_figures WHERE {scope} AND orders > 0 ORDER BY product_id, currency",
            *args,
        )
        buyers = await _buyers(conn, stream_id, REPLAY_SCOPE + (brand_id or ""))
    return _sales(stream_id, products, buyers, ())
