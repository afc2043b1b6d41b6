"""A stream's sales figures as its host and its brands see them: GMV, orders, units, buyers,
per product (with the stock left) and per minute, beside the room's viewers.

Who sees what is decided here: the stream's host (and the admin) sees the whole show; a brand
sees only its own products' share of it — its figures, its buyers, its conversion — and only
in a show that features its products; anyone else is refused.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

import msgspec

from chat.announce import Watcher, nudge
from checkout.catalog_sql import ProductStore
from checkout.orders_sql import OrderStore
from checkout.records import Product
from checkout.reports_sql import ReportStore
from checkout.sales import Sales
from checkout.streams import StreamFacts, StreamLookup
from core.db.driver import StoreError
from core.errors import Conflict, Forbidden, NotFound, Unavailable
from core.identity import Account, Role, owns, require
from core.logs import log

logger = logging.getLogger("livecart.checkout")


def sales_key(stream_id: str) -> str:
    """The broker key a stream's sales feeds watch (nudged after each change to its figures)."""
    return f"sales:{stream_id}"


class Audience(Protocol):
    """What the room knows of the people watching (chat's room state fits it)."""

    async def viewers(self, room: str) -> int: ...

    async def viewers_peak(self, room: str) -> int: ...

    async def unique_viewers(self, room: str) -> int: ...


class ProductFigures(msgspec.Struct):
    product_id: str
    title: str
    orders: int
    units: int
    gmv: int
    remaining: int  # units left to sell: the running sale's, else the product's stock


class MinuteFigures(msgspec.Struct):
    t: float  # the minute's start, Unix seconds
    orders: int
    gmv: int


class ReplayProductFigures(msgspec.Struct):
    product_id: str
    orders: int
    units: int
    gmv: int


class ReplayFigures(msgspec.Struct):
    """The replay's own audience and sales, after the show: never part of the show's figures."""

    views: int  # times the replay was started
    gmv: int  # minor units of the figures' currency
    orders: int
    units: int
    buyers: int
    conversion: float  # buyers / views (0 with no views yet)
    products: list[ReplayProductFigures]


class SalesFigures(msgspec.Struct):
    stream_id: str
    gmv: int  # minor units of `currency`
    currency: str
    orders: int
    units: int
    buyers: int
    viewers_now: int  # watching at this moment (0 once the show is over)
    viewers_peak: int
    viewers_unique: int
    conversion: float  # buyers / unique viewers (0 with no viewers yet)
    products: list[ProductFigures]
    timeline: list[MinuteFigures]
    ended_at: float | None  # set once the show is over: the figures are then its report
    replay: ReplayFigures


NO_REPLAY = ReplayFigures(views=0, gmv=0, orders=0, units=0, buyers=0, conversion=0.0, products=[])


@dataclass(frozen=True, slots=True)
class Scope:
    """What one caller may see of a stream: the whole show (brand_id None) or a brand's share."""

    stream: StreamFacts
    brand_id: str | None
    lineup: list[Product]

    @property
    def key(self) -> tuple[str, str]:
        return self.stream.id, self.brand_id or ""


class Figures:
    def __init__(
        self,
        orders: OrderStore,
        products: ProductStore,
        sales: Sales,
        streams: StreamLookup,
        audience: Audience,
        reports: ReportStore,
        watcher: Watcher,
    ) -> None:
        self._orders = orders
        self._products = products
        self._sales = sales
        self._streams = streams
        self._audience = audience
        self._reports = reports
        self._watcher = watcher

    async def of_stream(self, principal: Account | None, stream_id: str) -> SalesFigures:
        return await self.read(await self.scope_of(principal, stream_id))

    async def scope_of(self, principal: Account | None, stream_id: str) -> Scope:
        """401, 404, 403 in that order: the host (and the admin) see the whole show, a brand its
        own products in it, anyone else nothing."""
        who = require(principal, Role.HOST, Role.BRAND, Role.ADMIN)
        stream = await self._streams.get_stream(stream_id)
        if stream is None:
            raise NotFound(f"no stream with id {stream_id!r}", code="stream_not_found")
        lineup = await self._products.get_products(stream.product_ids)
        if who.role is Role.BRAND:
            lineup = [p for p in lineup if p.brand_id == who.id]
            if not lineup:
                raise Forbidden("this show features none of your products", code="forbidden")
            return Scope(stream, who.id, lineup)
        if not owns(who, stream.host_id):
            raise Forbidden(
                "only the host of this show, or its brands, may see its figures", code="forbidden"
            )
        return Scope(stream, None, lineup)

    async def reread(self, scope: Scope) -> SalesFigures:
        """`read`, with the stream and its products looked up again (the show may have ended,
        a product's stock moved, since the scope was made)."""
        stream = await self._streams.get_stream(scope.stream.id) or scope.stream
        lineup = await self._products.get_products(stream.product_ids)
        if scope.brand_id is not None:
            lineup = [p for p in lineup if p.brand_id == scope.brand_id]
        return await self.read(Scope(stream, scope.brand_id, lineup))

    async def read(self, scope: Scope) -> SalesFigures:
        stream, lineup = scope.stream, scope.lineup
        kept = await self._orders.stream_sales(stream.id, scope.brand_id)
        currency = lineup[0].currency if lineup else "USD"
        sold = {p.product_id: p for p in kept.products if p.currency == currency}
        report = await self._reports.get(stream.id) if stream.ended else None
        now = 0
        if report is not None:
            peak, unique, remaining = report.viewers_peak, report.viewers_unique, dict(report.remaining)
        else:
            peak, unique, remaining = await self._live(stream.id, lineup)
            if not stream.ended:
                now = await self._audience.viewers(stream.id)
        # a buyer watched, even one who bought through an app's own client and never joined the room
        unique = max(unique, kept.buyers)
        products = []
        for product in lineup:
            figures = sold.get(product.id)
            products.append(
                ProductFigures(
                    product_id=product.id,
                    title=product.title,
                    orders=figures.orders if figures else 0,
                    units=figures.units if figures else 0,
                    gmv=figures.gmv if figures else 0,
                    remaining=remaining.get(product.id, product.stock),
                )
            )
        return SalesFigures(
            stream_id=stream.id,
            gmv=sum(p.gmv for p in sold.values()),
            currency=currency,
            orders=kept.orders,
            units=kept.units,
            buyers=kept.buyers,
            viewers_now=now,
            viewers_peak=peak,
            viewers_unique=unique,
            conversion=round(kept.buyers / unique, 4) if unique else 0.0,
            products=products,
            timeline=[MinuteFigures(m.t, m.orders, m.gmv) for m in kept.timeline if m.currency == currency],
            ended_at=report.ended_at if report else stream.ended_at,
            replay=await self._replay(scope, currency) if stream.ended else NO_REPLAY,
        )

    async def _replay(self, scope: Scope, currency: str) -> ReplayFigures:
        kept = await self._orders.replay_sales(scope.stream.id, scope.brand_id)
        views = await self._reports.replay_views(scope.stream.id)
        sold = [p for p in kept.products if p.currency == currency]
        return ReplayFigures(
            views=views,
            gmv=sum(p.gmv for p in sold),
            orders=kept.orders,
            units=kept.units,
            buyers=kept.buyers,
            conversion=round(kept.buyers / views, 4) if views else 0.0,
            products=[ReplayProductFigures(p.product_id, p.orders, p.units, p.gmv) for p in sold],
        )

    async def count_replay_view(self, stream_id: str) -> None:
        """Someone started the replay: 404 for no such stream, 409 while the show is still on."""
        stream = await self._streams.get_stream(stream_id)
        if stream is None:
            raise NotFound(f"no stream with id {stream_id!r}", code="stream_not_found")
        if not stream.ended:
            raise Conflict("the show is still on: its replay starts when it ends", code="stream_not_ended")
        await self._reports.count_replay_view(stream_id)
        await nudge(self._watcher, sales_key(stream_id))

    async def _live(self, stream_id: str, lineup: list[Product]) -> tuple[int, int, dict[str, int]]:
        """What the running show knows: its room's viewers and the units left to sell (the
        running sale's for its product, else each product's stock)."""
        running = await self._sales.current_view(stream_id)
        remaining = {p.id: p.stock for p in lineup}
        if running is not None and running.product_id in remaining:
            remaining[running.product_id] = running.remaining
        peak = await self._audience.viewers_peak(stream_id)
        unique = await self._audience.unique_viewers(stream_id)
        return peak, unique, remaining

    async def freeze(self, stream_id: str) -> None:
        """The stream ended: keep its viewers and units left as the post-show report (the room's
        figures do not outlive the room). Run by the node that ended it; a failure is logged,
        and the report then reads on from the room while it still answers."""
        try:
            stream = await self._streams.get_stream(stream_id)
            if stream is None:
                return
            lineup = await self._products.get_products(stream.product_ids)
            peak, unique, remaining = await self._live(stream_id, lineup)
            await self._reports.freeze(stream_id, stream.ended_at or time.time(), peak, unique, remaining)
            await nudge(self._watcher, sales_key(stream_id))
        except (StoreError, Unavailable) as exc:
            log(logger, logging.WARNING, "sales report not frozen", stream=stream_id, error=str(exc))
