"""Flash sales: a host starts one on a product of the stream, the stock holds its units, it ends.

A sale's row fixes its price, quantity and countdown; the stock (checkout/stock.py) counts
its units as remaining, held or sold. The room hears `sale` when one starts and `sale_end`
once, whichever way it ends (the host, the countdown, or its last unit paid for).
"""

from __future__ import annotations

import logging
import time

from chat.announce import Publisher, announce
from checkout.catalog_sql import ProductStore
from checkout.consent import check_sale_terms, require_grants
from checkout.grants_sql import GrantStore
from checkout.records import Sale
from checkout.sales_sql import NotEnoughStock, SaleRunning, SaleStore
from checkout.stock import SaleEnded, Stock
from checkout.streams import StreamFacts, StreamLookup, own_stream
from core import events
from core.db.driver import StoreError
from core.errors import Conflict, Invalid, NotFound, Unavailable
from core.events import SaleOut
from core.identity import Account
from core.logs import log

logger = logging.getLogger("livecart.checkout")

SALE_CACHE_SIZE = 10_000


class Sales:
    def __init__(
        self,
        sales: SaleStore,
        products: ProductStore,
        stock: Stock,
        streams: StreamLookup,
        rooms: Publisher,
        grants: GrantStore,
    ) -> None:
        self.store = sales
        self._grants = grants
        self._products = products
        self._stock = stock
        self._streams = streams
        self._rooms = rooms
        self._known: dict[str, Sale] = {}  # sale rows read for buys (only their end changes)

    # -- how a sale looks ----------------------------------------------------------------------
    async def view(self, sale: Sale) -> SaleOut:
        counts = await self._stock.counts(sale.id)
        now = time.time()
        if now >= sale.closes_at:
            state = "ended"
        elif counts.sold >= sale.quantity:
            state = "ended"  # sold out for good: every unit paid for
        elif counts.remaining == 0:
            state = "sold_out"  # for now: a hold coming back reopens it
        else:
            state = "live"
        return SaleOut(
            id=sale.id,
            product_id=sale.product_id,
            price=sale.price,
            currency=sale.currency,
            quantity=sale.quantity,
            remaining=counts.remaining,
            per_viewer_limit=sale.per_viewer_limit,
            starts_at=sale.starts_at,
            ends_at=sale.ends_at if sale.ended_at is None else sale.closes_at,
            state=state,
        )

    async def current_view(self, stream_id: str) -> SaleOut | None:
        """The stream's running sale as a stream body shows it (None when there is none)."""
        sale = await self.store.current_sale(stream_id, time.time())
        return None if sale is None else await self.view(sale)

    # -- a host's sales ------------------------------------------------------------------------
    async def own_stream(self, principal: Account | None, stream_id: str) -> StreamFacts:
        return await own_stream(self._streams, principal, stream_id)

    async def start(
        self,
        principal: Account | None,
        stream_id: str,
        *,
        product_id: str,
        price: int,
        quantity: int,
        duration_s: float,
        per_viewer_limit: int = 1,
    ) -> Sale:
        stream = await self.own_stream(principal, stream_id)
        if stream.ended:
            raise Conflict("the stream has ended", code="stream_ended")
        if product_id not in stream.product_ids:
            raise Invalid("product_id", "that product is not in this stream", code="product_not_in_stream")
        if per_viewer_limit > quantity:
            raise Invalid("per_viewer_limit", "cannot be more than the quantity", code="invalid_field")
        product = await self._products.get_product(product_id)
        if product is None:
            raise Invalid("product_id", f"no product with id {product_id!r}", code="unknown_product")
        grant = (await require_grants(self._grants, stream.host_id, [product]))[product.brand_id]
        check_sale_terms(product, grant, price=price, quantity=quantity)
        try:
            sale = await self.store.create_sale(
                stream_id=stream_id,
                product_id=product.id,
                price=price,
                currency=product.currency,
                quantity=quantity,
                per_viewer_limit=per_viewer_limit,
                duration_s=duration_s,
            )
        except SaleRunning as exc:
            raise Conflict(
                "the stream already has a sale running; end it first", code="sale_running"
            ) from exc
        except NotEnoughStock as exc:
            raise Invalid(
                "quantity", f"the product has only {exc.available} in stock", code="not_enough_stock"
            ) from exc
        await self._stock.open_sale(
            sale.id, quantity=sale.quantity, per_viewer_limit=sale.per_viewer_limit, ends_at=sale.ends_at
        )
        view = await self.view(sale)
        await announce(self._rooms, stream_id, events.SALE, view)
        left = events.StockLeft(product_id=sale.product_id, remaining=view.remaining)
        await announce(self._rooms, stream_id, events.STOCK, left)
        return sale

    async def end(self, principal: Account | None, stream_id: str, sale_id: str) -> Sale:
        await self.own_stream(principal, stream_id)
        sale = await self.store.get_sale(sale_id)
        if sale is None or sale.stream_id != stream_id:
            raise NotFound(f"no sale {sale_id!r} in this stream", code="sale_not_found")
        return await self.close(sale, time.time())

    async def close(self, sale: Sale, at: float) -> Sale:
        """Stop taking reservations at `at`; the room hears `sale_end` from the first close only."""
        await self._stock.end_sale(sale.id, at)
        ended = await self.store.end_sale(sale.id, at)
        if ended is None:
            return sale
        closed, first = ended
        if first:
            await announce(self._rooms, closed.stream_id, events.SALE_END, await self.view(closed))
        return closed

    async def stream_ended(self, stream_id: str) -> None:
        """The show is over: so is its running sale (its buyers go on in the replay, at the
        regular price); the unsold units go back to the product's stock."""
        now = time.time()
        try:
            running = await self.store.current_sale(stream_id, now)
            if running is not None:
                await self.close(running, now)
        except (StoreError, Unavailable) as exc:  # it still ends at its countdown's end
            log(logger, logging.WARNING, "sale not closed with its show", stream=stream_id, error=str(exc))

    # -- the sale a buy is for -------------------------------------------------------------------
    async def for_order(
        self, stream_id: str, product_id: str, sale_id: str | None, now: float
    ) -> Sale | None:
        """The sale a buy of `product_id` takes its units from: the one it names (checked), or
        the stream's running sale of that product; None for a regular buy."""
        if sale_id is not None:
            # What a sale row says never changes but its end, and the stock's own reservation
            # refuses a sale that is over (it is told the same end): a remembered row will do.
            sale = self._known.get(sale_id)
            if sale is None:
                sale = await self.store.get_sale(sale_id)
                if sale is not None:
                    if len(self._known) > SALE_CACHE_SIZE:
                        self._known.clear()
                    self._known[sale.id] = sale
            if sale is None or sale.stream_id != stream_id or sale.product_id != product_id:
                raise Invalid("sale_id", "no such sale for this product in this stream", code="unknown_sale")
            if now >= sale.closes_at:
                raise SaleEnded("the sale is over")
            return sale
        sale = await self.store.current_sale(stream_id, now)
        return sale if sale is not None and sale.product_id == product_id else None
