"""Orders: a viewer's buy, and what the viewer (or the admin) may do with it afterwards.

Placing an order: reserve the units (the stock's hold is named by the order id), ask the
provider for a payment intent, then write the order `pending_payment` with it. A retried
tap (the same Idempotency-Key and body) gets the first order back; the same key for another
body is refused. What happens once the payment answers is checkout/settlement.py.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import time

from checkout.catalog_sql import ProductStore
from checkout.consent import require_grants
from checkout.grants_sql import GrantStore
from checkout.orders_sql import ORDER, HeldTooMany, OrderStore
from checkout.payments import PaymentProvider
from checkout.records import FINAL, LIVE, REPLAY, Order, OrderStatus
from checkout.sales import Sales
from checkout.sales_sql import NotEnoughStock
from checkout.settlement import Settlement
from checkout.stock import HoldLimitReached, SaleEnded, SoldOut, Stock
from checkout.streams import StreamFacts, StreamLookup
from checkout.ticker import StockTicker
from core import ids
from core.errors import BadRequest, Conflict, Invalid, NotFound, Unavailable
from core.identity import Account, Role, forbid_unless, require, require_owner
from core.logs import log
from core.recent import Recent

logger = logging.getLogger("livecart.checkout")

MAX_QUANTITY = 99
MAX_KEY_LENGTH = 200
STREAM_CACHE_S = 1.0
_PAID = frozenset({OrderStatus.PAID, OrderStatus.REFUNDED})


def check_idempotency_key(key: str | None) -> str:
    """The buyer's Idempotency-Key: printable ASCII, at most MAX_KEY_LENGTH characters. It goes
    into the batched INSERT of a rush, so a key the database could not store would fail the
    buyers it is written with."""
    if key is None or not key.strip():
        raise BadRequest("the Idempotency-Key header is required", code="idempotency_key_required")
    if len(key) > MAX_KEY_LENGTH or not (key.isascii() and key.isprintable()):
        raise Invalid(
            "Idempotency-Key",
            f"must be printable ASCII, at most {MAX_KEY_LENGTH} characters",
            code="invalid_idempotency_key",
        )
    return key


def request_hash(stream_id: str, product_id: str, quantity: int, sale_id: str | None) -> str:
    """What a retried tap must repeat exactly to get its first order back."""
    canonical = f"{stream_id}\x00{product_id}\x00{quantity}\x00{sale_id or ''}"
    return hashlib.sha256(canonical.encode()).hexdigest()


class Orders:
    def __init__(
        self,
        orders: OrderStore,
        products: ProductStore,
        stock: Stock,
        provider: PaymentProvider,
        streams: StreamLookup,
        sales: Sales,
        settlement: Settlement,
        ticker: StockTicker,
        grants: GrantStore,
        *,
        reservation_ttl_s: float,
        sale_hold_ttl_s: float,
        max_order_quantity: int,
        max_held_units: int,
    ) -> None:
        self.store = orders
        self._products = products
        self._stock = stock
        self._provider = provider
        self._streams = streams
        self._sales = sales
        self._settlement = settlement
        self._ticker = ticker
        self._grants = grants
        self.ttl = reservation_ttl_s
        self.sale_ttl = sale_hold_ttl_s
        self.max_quantity = max_order_quantity
        self.max_held = max_held_units
        self._recent_streams: Recent[str, StreamFacts] = Recent(STREAM_CACHE_S)

    # -- buying ----------------------------------------------------------------------------------
    async def place(
        self,
        principal: Account | None,
        key: str | None,
        *,
        stream_id: str,
        product_id: str,
        quantity: int = 1,
        sale_id: str | None = None,
    ) -> tuple[Order, bool]:
        """The order and whether this call created it (False: a retry with the same key)."""
        viewer = require(principal, Role.VIEWER)
        key = check_idempotency_key(key)
        if quantity > self.max_quantity:
            raise Invalid("quantity", f"at most {self.max_quantity} per order", code="over_max_quantity")
        digest = request_hash(stream_id, product_id, quantity, sale_id)
        try:
            return await self._place(viewer, key, digest, stream_id, product_id, quantity, sale_id)
        except Conflict:
            # A retried tap whose first try won (and then sold the last unit, used up the
            # viewer's limit, or outlived the sale) gets its order back, not a refusal.
            # Looked up only on a refusal, so the rush path pays nothing for it.
            existing = await self.store.order_by_key(viewer.id, key)
            if existing is not None:
                return self._same_request(existing, digest), False
            raise

    async def _place(
        self,
        viewer: Account,
        key: str,
        digest: str,
        stream_id: str,
        product_id: str,
        quantity: int,
        sale_id: str | None,
    ) -> tuple[Order, bool]:
        stream = await self._stream(stream_id)
        if stream is None:
            raise Invalid("stream_id", f"no stream with id {stream_id!r}", code="unknown_stream")
        if product_id not in stream.product_ids:
            if await self._products.get_product(product_id) is None:
                raise Invalid("product_id", f"no product with id {product_id!r}", code="unknown_product")
            raise Invalid("product_id", "that product is not in this stream", code="product_not_in_stream")
        now = time.time()
        # A show that is over sells its lineup from the replay, at the regular price (a sale it
        # names is over: 409 sale_ended), while the brand still grants its host.
        if stream.ended and sale_id is not None:
            raise SaleEnded("the sale ended with the show")
        sale = None if stream.ended else await self._sales.for_order(stream.id, product_id, sale_id, now)
        if sale is not None:  # the sale fixes price and currency: no product read on the rush path
            unit_price, currency = sale.price, sale.currency
        else:
            product = await self._products.get_product(product_id)
            if product is None:
                raise Invalid("product_id", f"no product with id {product_id!r}", code="unknown_product")
            if stream.ended:
                await require_grants(self._grants, stream.host_id, [product])
            unit_price, currency = product.price, product.currency
        order_id = ids.new_id(ORDER)
        ttl = self.sale_ttl if sale is not None else self.ttl  # a rush's holds turn over faster
        order = Order(
            id=order_id,
            viewer_id=viewer.id,
            stream_id=stream.id,
            product_id=product_id,
            sale_id=sale.id if sale else None,
            quantity=quantity,
            unit_price=unit_price,
            amount=unit_price * quantity,
            currency=currency,
            status=OrderStatus.PENDING_PAYMENT,
            idempotency_key=key,
            request_hash=digest,
            provider=self._provider.name,
            intent_id=None,
            client_secret=None,
            created_at=now,
            updated_at=now,
            expires_at=now + ttl,
            paid_at=None,
            channel=REPLAY if stream.ended else LIVE,
        )
        if sale is not None:
            # Taking the units first: the order row exists only for units that were there.
            await self._stock.reserve(sale.id, order_id, viewer.id, quantity, ttl, self.max_held)
        # The intent before the row, so the row is written once, complete. An intent whose
        # row never gets written is harmless: the buyer never saw its secret, so it is never
        # paid, and it is canceled below or simply lapses.
        try:
            intent = await self._provider.create_intent(order)
        except Exception as exc:
            log(logger, logging.WARNING, "payment intent not created", order=order_id, error=str(exc))
            if sale is not None:
                await self._stock.release(sale.id, order_id)
            raise Unavailable(
                "the payment provider does not answer; try again", code="payment_unavailable"
            ) from exc
        order = dataclasses.replace(order, intent_id=intent.id, client_secret=intent.client_secret)
        try:
            stored = await self.store.create_order(
                order, take_product_stock=sale is None, max_held=self.max_held
            )
        except HeldTooMany as exc:
            await self._drop_intent(order)
            raise HoldLimitReached(
                f"at most {self.max_held} unpaid units at a time in this stream; pay for those first"
            ) from exc
        except NotEnoughStock as exc:
            await self._drop_intent(order)
            raise SoldOut("sold out" if exc.available == 0 else f"only {exc.available} left") from exc
        except BaseException:
            if sale is not None:
                await self._stock.release(sale.id, order_id)
            await self._drop_intent(order)
            raise
        if stored.id != order_id:  # the same key raced in from another request: that one wins
            if sale is not None:
                await self._stock.release(sale.id, order_id)
            await self._drop_intent(order)
            return self._same_request(stored, digest), False
        self._ticker.note(stored)
        return stored, True

    async def _stream(self, stream_id: str) -> StreamFacts | None:
        """The stream a buy names, remembered for a second: every tap of a rush names the same
        one. (An order may thus land up to a second after the stream ended; money and stock
        are never read from here.)"""
        return await self._recent_streams.get(
            stream_id, functools.partial(self._streams.get_stream, stream_id)
        )

    async def forget_stream(self, stream_id: str) -> None:
        """The stream ended through this node: stop taking orders for it at once."""
        self._recent_streams.forget(stream_id)

    def _same_request(self, existing: Order, digest: str) -> Order:
        if existing.request_hash != digest:
            raise Invalid(
                "Idempotency-Key", "this key was used for a different order", code="idempotency_key_reused"
            )
        return existing

    async def _drop_intent(self, order: Order) -> None:
        if order.intent_id is None:
            return
        try:
            await self._provider.cancel(order.intent_id, order.id)
        except Exception as exc:  # never shown to a buyer: it cannot be paid anyway
            log(logger, logging.INFO, "unused payment intent not canceled", order=order.id, error=str(exc))

    # -- after the buy ---------------------------------------------------------------------------
    async def get(self, principal: Account | None, order_id: str) -> Order:
        who = require(principal, Role.VIEWER, Role.ADMIN)
        order = await self.store.get_order(order_id)
        if order is None:
            raise NotFound(f"no order with id {order_id!r}", code="order_not_found")
        require_owner(who, order.viewer_id, "this is another viewer's order")
        return order

    async def cancel(self, principal: Account | None, order_id: str) -> Order:
        order = await self.get(principal, order_id)
        forbid_unless(principal is not None and principal.id == order.viewer_id, "only the buyer may cancel")
        if order.status in FINAL and order.status is not OrderStatus.REFUNDED:
            return order  # already over: canceling again changes nothing
        if order.status is OrderStatus.PENDING_PAYMENT:
            # Decided on the row, not on what was read above: a payment may have claimed it since.
            order = await self._settlement.give_back(order, OrderStatus.CANCELED)
        if order.status is OrderStatus.PENDING_PAYMENT or order.status in _PAID:
            # still pending here: claimed by a payment that is going through
            raise Conflict("the order is paid (or being paid); ask for a refund", code="order_paid")
        return order

    async def refund(self, principal: Account | None, order_id: str) -> Order:
        """Give a paid order's money back (admin). The units are not restocked: what was
        shipped or kept is the operator's business, not the sale's."""
        require(principal, Role.ADMIN)
        order = await self.store.get_order(order_id)
        if order is None:
            raise NotFound(f"no order with id {order_id!r}", code="order_not_found")
        if order.status is OrderStatus.REFUNDED:
            return order
        if order.status is not OrderStatus.PAID:
            raise Conflict(
                f"only a paid order can be refunded; this one is {order.status}", code="order_not_paid"
            )
        if order.intent_id:
            await self._provider.refund(order.intent_id, order.id)  # idempotent on the provider's side
        return await self._settlement.move(order, OrderStatus.REFUNDED)

    async def pay_demo(self, principal: Account | None, order_id: str) -> Order:
        order = await self.get(principal, order_id)
        forbid_unless(principal is not None and principal.id == order.viewer_id, "only the buyer may pay")
        if order.provider != "demo":
            raise Conflict("this order is paid through its payment provider", code="not_demo")
        if order.status is OrderStatus.PAID:
            return order
        if order.status is not OrderStatus.PENDING_PAYMENT:
            raise Conflict(f"the order is {order.status}", code=f"order_{order.status}")
        settled = await self._settlement.authorized(order)
        if settled.status is not OrderStatus.PAID:
            raise Conflict(f"the order is {settled.status}", code=f"order_{settled.status}")
        return settled
