"""The `sales_reports` tables, and the reads that outlive a show: a brand's figures across its
streams, and a stream's paid and refunded orders for the export.

A stream's report freezes what only the running show knew — its peak and unique viewers and
the units left to sell — when the stream ends; the money figures are read from the kept
`sales_figures` (checkout/orders_sql.py), so a refund after the show still comes off them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.db.driver import Driver


@dataclass(frozen=True, slots=True)
class Report:
    stream_id: str
    ended_at: float
    viewers_peak: int
    viewers_unique: int
    remaining: Mapping[str, int]  # product id → units left when the show ended


@dataclass(frozen=True, slots=True)
class BrandSalesRow:
    """A brand's paid orders, net of refunds, in one stream or of one product, in one currency."""

    key: str  # stream id or product id
    currency: str
    orders: int
    units: int
    gmv: int


@dataclass(frozen=True, slots=True)
class ExportRow:
    order_id: str
    paid_at: float
    status: str
    product_id: str
    quantity: int
    unit_price: int
    amount: int
    currency: str
    viewer_id: str
    channel: str


_EXPORT = "id, paid_at, status, product_id, quantity, unit_price, amount, currency, viewer_id, channel"


class ReportStore:
    def __init__(self, db: Driver) -> None:
        self._db = db

    async def freeze(
        self, stream_id: str, ended_at: float, peak: int, unique: int, remaining: Mapping[str, int]
    ) -> bool:
        """Keep the show's report; False when it was frozen already (the first freeze stands)."""
        async with self._db.transaction(write=True) as conn:
            row = await conn.fetchone(
                "INSERT INTO sales_reports (stream_id, ended_at, viewers_peak, viewers_unique)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (stream_id) DO NOTHING RETURNING stream_id",
                stream_id,
                ended_at,
                peak,
                unique,
            )
            if row is None:
                return False
            for product_id, left in remaining.items():
                await conn.execute(
                    "INSERT INTO sales_report_stock (stream_id, product_id, remaining) VALUES ($1, $2, $3)",
                    stream_id,
                    product_id,
                    left,
                )
        return True

    async def get(self, stream_id: str) -> Report | None:
        async with self._db.transaction(write=False) as conn:
            row = await conn.fetchone(
                "SELECT ended_at, viewers_peak, viewers_unique FROM sales_reports WHERE stream_id = $1",
                stream_id,
            )
            if row is None:
                return None
            stock = await conn.fetchall(
                "SELECT product_id, remaining FROM sales_report_stock WHERE stream_id = $1", stream_id
            )
        return Report(
            stream_id,
            float(row["ended_at"]),
            int(row["viewers_peak"]),
            int(row["viewers_unique"]),
            {r["product_id"]: int(r["remaining"]) for r in stock},
        )

    async def brand_sales(
        self, brand_id: str, start: float, end: float
    ) -> tuple[list[BrandSalesRow], list[BrandSalesRow]]:
        """The brand's kept figures for minutes in [start, end): per stream, and per product.
        Its cost follows the brand's products and minutes in range, never its orders."""
        scope = "product_id IN (SELECT id FROM products WHERE brand_id = $1) AND minute >= $2 AND minute < $3"
        args: list[Any] = [brand_id, start, end]
        rows: list[list[BrandSalesRow]] = []
        async with self._db.transaction(write=False) as conn:
            for key in ("stream_id", "product_id"):
                found = await conn.fetchall(
                    f"SELECT {key} AS key, currency, SUM(orders) AS orders, SUM(units) AS units,"
                    f" SUM(gmv) AS gmv FROM sales_figures WHERE {scope}"
                    f" GROUP BY {key}, currency HAVING SUM(orders) > 0 ORDER BY SUM(gmv) DESC, {key}",
                    *args,
                )
                rows.append(
                    [
                        BrandSalesRow(
                            r["key"], r["currency"], int(r["orders"]), int(r["units"]), int(r["gmv"])
                        )
                        for r in found
                    ]
                )
        return rows[0], rows[1]

    async def export_page(
        self, stream_id: str, brand_id: str | None, after: tuple[float, str] | None, limit: int
    ) -> list[ExportRow]:
        """Up to `limit` paid or refunded orders of the stream (a brand's products only, with
        `brand_id`), in the order they were paid, after the (paid_at, id) given: the export reads
        page by page, so it never holds a whole show's orders at once."""
        where = "stream_id = $1 AND status IN ('paid', 'refunded') AND paid_at IS NOT NULL"
        args: list[Any] = [stream_id]
        if brand_id is not None:
            args.append(brand_id)
            where += f" AND product_id IN (SELECT id FROM products WHERE brand_id = ${len(args)})"
        if after is not None:
            args.extend(after)
            n = len(args)
            where += f" AND (paid_at > ${n - 1} OR (paid_at = ${n - 1} AND id > ${n}))"
        args.append(limit)
        rows = await self._db.fetchall(
            f"SELECT {_EXPORT} FROM orders WHERE {where} ORDER BY paid_at, id LIMIT ${len(args)}", *args
        )
        return [
            ExportRow(
                r["id"],
                float(r["paid_at"]),
                r["status"],
                r["product_id"],
                int(r["quantity"]),
                int(r["unit_price"]),
                int(r["amount"]),
                r["currency"],
                r["viewer_id"],
                r["channel"],
            )
            for r in rows
        ]

    async def count_replay_view(self, stream_id: str) -> None:
        await self._db.execute(
            "INSERT INTO replay_views (stream_id, views) VALUES ($1, 1)"
            " ON CONFLICT (stream_id) DO UPDATE SET views = replay_views.views + 1",
            stream_id,
        )

    async def replay_views(self, stream_id: str) -> int:
        row = await self._db.fetchone("SELECT views FROM replay_views WHERE stream_id = $1", stream_id)
        return int(row["views"]) if row else 0
