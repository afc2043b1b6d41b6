"""What a show leaves behind for its brands: the export of its orders, and a brand's figures
across all its shows over a time range.

The export is a CSV of the paid and refunded orders in the caller's scope (checkout/figures.py
decides it), read page by page and written as it is read: a show of 100,000 orders never sits
in memory. It carries no card data and, of the buyer, only the display name.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime

import msgspec

from checkout.catalog_sql import ProductStore
from checkout.figures import Figures
from checkout.reports_sql import BrandSalesRow, ExportRow, ReportStore
from core.accounts import AccountStore
from core.errors import Invalid
from core.identity import Account, Role, require

EXPORT_PAGE = 500  # orders read (and buyer names looked up) at a time
DEFAULT_RANGE_S = 30 * 86400
MAX_RANGE_S = 366 * 86400
_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run a cell starting so

COLUMNS = (
    "order_id",
    "paid_at",
    "status",
    "product_id",
    "product",
    "quantity",
    "unit_price",
    "amount",
    "currency",
    "buyer",
    "channel",
)


class Totals(msgspec.Struct):
    currency: str
    orders: int
    units: int
    gmv: int


class StreamTotals(Totals):
    stream_id: str


class ProductTotals(Totals):
    product_id: str
    title: str


class BrandSales(msgspec.Struct):
    brand_id: str
    start: float = msgspec.field(name="from")
    end: float = msgspec.field(name="to")
    totals: list[Totals]  # one per currency sold in
    streams: list[StreamTotals]
    products: list[ProductTotals]


def _instant(name: str, value: str | None, default: float) -> float:
    """Unix seconds, or an ISO 8601 date or date-time (UTC unless it says otherwise)."""
    if value is None or value == "":
        return default
    try:
        return float(value) if value.lstrip("-").replace(".", "", 1).isdigit() else _iso(value)
    except ValueError:
        raise Invalid(name, "give Unix seconds or an ISO 8601 date or date-time", code="invalid") from None


def _iso(value: str) -> float:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _cell(text: str) -> str:
    return f"'{text}" if text.startswith(_FORMULA) else text


class Reports:
    def __init__(
        self, figures: Figures, reports: ReportStore, products: ProductStore, accounts: AccountStore
    ) -> None:
        self._figures = figures
        self._reports = reports
        self._products = products
        self._accounts = accounts

    async def brand_sales(self, principal: Account | None, start: str | None, end: str | None) -> BrandSales:
        """The brand's paid orders net of refunds, in [from, to) by the minute they were paid
        in (default: the last 30 days), across every show that sold its products."""
        who = require(principal, Role.BRAND)
        until = _instant("to", end, time.time())
        since = _instant("from", start, until - DEFAULT_RANGE_S)
        if since >= until:
            raise Invalid("from", "must be before to", code="invalid")
        if until - since > MAX_RANGE_S:
            raise Invalid("from", "a range may span 366 days at most", code="invalid")
        by_stream, by_product = await self._reports.brand_sales(who.id, since, until)
        titles = {p.id: p.title for p in await self._products.get_products([r.key for r in by_product])}
        totals: dict[str, Totals] = {}
        for row in by_stream:
            total = totals.setdefault(row.currency, Totals(row.currency, 0, 0, 0))
            total.orders += row.orders
            total.units += row.units
            total.gmv += row.gmv
        return BrandSales(
            brand_id=who.id,
            start=since,
            end=until,
            totals=sorted(totals.values(), key=lambda t: -t.gmv),
            streams=[StreamTotals(*_money(r), stream_id=r.key) for r in by_stream],
            products=[
                ProductTotals(*_money(r), product_id=r.key, title=titles.get(r.key, "")) for r in by_product
            ],
        )

    async def export(self, principal: Account | None, stream_id: str) -> AsyncIterator[bytes]:
        """The CSV export's chunks, a header first; the caller's scope is checked (401/404/403)
        before the first chunk is asked for."""
        scope = await self._figures.scope_of(principal, stream_id)
        titles = {p.id: p.title for p in scope.lineup}
        return self._rows(stream_id, scope.brand_id, titles)

    async def _rows(
        self, stream_id: str, brand_id: str | None, titles: Mapping[str, str]
    ) -> AsyncIterator[bytes]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        yield _drain(out)
        after: tuple[float, str] | None = None
        while True:
            page = await self._reports.export_page(stream_id, brand_id, after, EXPORT_PAGE)
            if not page:
                return
            names = await self._accounts.names([row.viewer_id for row in page])
            for row in page:
                writer.writerow(_export_row(row, titles, names))
            yield _drain(out)
            if len(page) < EXPORT_PAGE:
                return
            after = (page[-1].paid_at, page[-1].order_id)


def _money(row: BrandSalesRow) -> tuple[str, int, int, int]:
    return row.currency, row.orders, row.units, row.gmv


def _export_row(row: ExportRow, titles: Mapping[str, str], names: Mapping[str, str]) -> tuple[object, ...]:
    paid = datetime.fromtimestamp(row.paid_at, UTC).isoformat(timespec="milliseconds")
    return (
        row.order_id,
        paid.replace("+00:00", "Z"),
        row.status,
        row.product_id,
        _cell(titles.get(row.product_id, "")),
        row.quantity,
        row.unit_price,
        row.amount,
        row.currency,
        _cell(names.get(row.viewer_id, "")),
        row.channel,
    )


def _drain(out: io.StringIO) -> bytes:
    chunk = out.getvalue().encode()
    out.seek(0)
    out.truncate()
    return chunk
