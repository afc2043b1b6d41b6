"""A stream's sales figures as its host and its brands see them: GMV, orders, units, buyers,
per product (with the stock left) and per minute, beside the room's viewers.

Who sees what is decided here: the stream's host (and the admin) sees the whole show; a brand
sees only its own products' share of it — its figures, its buyers, its conversion — and only
in a show that features its products; anyone else is refused.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from checkout.catalog_sql import ProductStore
from checkout.orders_sql import OrderStore
from checkout.sales import Sales
from checkout.streams import StreamLookup
from core.errors import Forbidden, NotFound
from core.identity import Account, Role, owns, require


class Audience(Protocol):
    """What the room knows of the people watching (chat's room state fits it)."""

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


class SalesFigures(msgspec.Struct):
    stream_id: str
    gmv: int  # minor units of `currency`
    currency: str
    orders: int
    units: int
    buyers: int
    viewers_peak: int
    viewers_unique: int
    conversion: float  # buyers / unique viewers (0 with no viewers yet)
    products: list[ProductFigures]
    timeline: list[MinuteFigures]


class Figures:
    def __init__(
        self,
        orders: OrderStore,
        products: ProductStore,
        sales: Sales,
        streams: StreamLookup,
        audience: Audience,
    ) -> None:
        self._orders = orders
        self._products = products
        self._sales = sales
        self._streams = streams
        self._audience = audience

    async def of_stream(self, principal: Account | None, stream_id: str) -> SalesFigures:
        who = require(principal, Role.HOST, Role.BRAND, Role.ADMIN)
        stream = await self._streams.get_stream(stream_id)
        if stream is None:
            raise NotFound(f"no stream with id {stream_id!r}", code="stream_not_found")
        lineup = await self._products.get_products(stream.product_ids)
        brand_id: str | None = None
        if who.role is Role.BRAND:
            lineup = [p for p in lineup if p.brand_id == who.id]
            if not lineup:
                raise Forbidden("this show features none of your products", code="forbidden")
            brand_id = who.id
        elif not owns(who, stream.host_id):
            raise Forbidden(
                "only the host of this show, or its brands, may see its figures", code="forbidden"
            )

        kept = await self._orders.stream_sales(stream_id, brand_id)
        currency = lineup[0].currency if lineup else "USD"
        sold = {p.product_id: p for p in kept.products if p.currency == currency}
        running = await self._sales.current_view(stream_id)
        peak = await self._audience.viewers_peak(stream_id)
        unique = await self._audience.unique_viewers(stream_id)
        products = []
        for product in lineup:
            figures = sold.get(product.id)
            remaining = running.remaining if running and running.product_id == product.id else product.stock
            products.append(
                ProductFigures(
                    product_id=product.id,
                    title=product.title,
                    orders=figures.orders if figures else 0,
                    units=figures.units if figures else 0,
                    gmv=figures.gmv if figures else 0,
                    remaining=remaining,
                )
            )
        return SalesFigures(
            stream_id=stream_id,
            gmv=sum(p.gmv for p in sold.values()),
            currency=currency,
            orders=kept.orders,
            units=kept.units,
            buyers=kept.buyers,
            viewers_peak=peak,
            viewers_unique=unique,
            conversion=round(kept.buyers / unique, 4) if unique else 0.0,
            products=products,
            timeline=[MinuteFigures(m.t, m.orders, m.gmv) for m in kept.timeline if m.currency == currency],
        )
