"""The checkout: flash sales, orders, and the steps that move money and stock together.

Placing an order: reserve the units (the stock's hold is named by the order id),
write the order `pending_payment`, then ask the provider for a payment intent.
Settling it: commit the hold, capture the money, mark the order `paid` — each
step idempotent, in that order, so a crash between any two is finished by the
next webhook, sweep or reconcile. A hold that was lost (expired) is never paid
for: the authorization is canceled instead.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import time
from typing import Annotated, Any, Protocol

import msgspec

from chat.broker import announce
from checkout import ids
from checkout.accounts import forbid_unless, require
from checkout.orders import FINAL, Order, OrderStatus, Sale
from checkout.payments import IntentStatus, PaymentProvider
from checkout.stock import HoldState, SaleEnded, SoldOut, Stock
from checkout.store import Account, Role, Store, Stream, StreamState
from checkout.store_orders import ORDER, NotEnoughStock, SaleRunning
from server.errors import BadRequest, Conflict, Invalid, NotFound, Unavailable
from server.logs import log
from server.recent import Recent

logger = logging.getLogger("livecart.checkout")

MAX_QUANTITY = 99


class EventPublisher(Protocol):
    async def publish(self, stream_id: str, type: str, data: dict[str, Any]) -> object: ...


# -- shapes at the HTTP boundary ---------------------------------------------------------
class NewSale(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    product_id: str
    price: Annotated[int, msgspec.Meta(ge=0, le=10**12)]
    quantity: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
    duration_s: Annotated[float, msgspec.Meta(gt=0, le=24 * 3600)]
    per_viewer_limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY)] = 1


class NewOrder(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    stream_id: str
    product_id: str
    quantity: Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY)] = 1
    sale_id: str | None = None  # the sale the buyer saw; omitted: the current one, if any


class SaleOut(msgspec.Struct):
    id: str
    product_id: str
    price: int
    currency: str
    quantity: int
    remaining: int
    per_viewer_limit: int
    starts_at: float
    ends_at: float
    state: str  # live | sold_out | ended


class PaymentOut(msgspec.Struct):
    provider: str
    intent_id: str | None
    client_secret: str | None
    publishable_key: str | None


class OrderOut(msgspec.Struct):
    id: str
    viewer_id: str
    stream_id: str
    product_id: str
    sale_id: str | None
    quantity: int
    unit_price: int
    amount: int
    currency: str
    status: str
    created_at: float
    expires_at: float
    payment: PaymentOut


def request_hash(new: NewOrder) -> str:
    canonical = f"{new.stream_id}\x00{new.product_id}\x00{new.quantity}\x00{new.sale_id or ''}"
    return hashlib.sha256(canonical.encode()).hexdigest()


class Checkout:
    def __init__(
        self,
        store: Store,
        stock: Stock,
        provider: PaymentProvider,
        events: EventPublisher,
        *,
        reservation_ttl_s: float,
    ) -> None:
        self.store = store
        self.stock = stock
        self.provider = provider
        self.events = events
        self.ttl = reservation_ttl_s
        # product → (stream, sale) whose stock changed since the last announcement
        self._stock_changed: dict[str, tuple[str, str | None]] = {}
        self._streams: Recent[str, Stream] = Recent(self.STREAM_CACHE_S)
        self._sales: dict[str, Sale] = {}

    # -- views ---------------------------------------------------------------------------------
    async def sale_view(self, sale: Sale) -> SaleOut:
        counts = await self.stock.counts(sale.id)
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

    async def current_sale_view(self, stream_id: str) -> dict[str, Any] | None:
        sale = await self.store.current_sale(stream_id, time.time())
        if sale is None:
            return None
        built: dict[str, Any] = msgspec.to_builtins(await self.sale_view(sale))
        return built

    def order_view(self, order: Order) -> OrderOut:
        return OrderOut(
            id=order.id,
            viewer_id=order.viewer_id,
            stream_id=order.stream_id,
            product_id=order.product_id,
            sale_id=order.sale_id,
            quantity=order.quantity,
            unit_price=order.unit_price,
            amount=order.amount,
            currency=order.currency,
            status=str(order.status),
            created_at=order.created_at,
            expires_at=order.expires_at,
            payment=PaymentOut(
                provider=order.provider,
                intent_id=order.intent_id,
                client_secret=order.client_secret if order.status is OrderStatus.PENDING_PAYMENT else None,
                publishable_key=self.provider.publishable_key,
            ),
        )

    # -- sales -----------------------------------------------------------------------------------
    async def own_stream(self, principal: Account | None, stream_id: str) -> Any:
        who = require(principal, Role.HOST, Role.ADMIN)
        stream = await self.store.get_stream(stream_id)
        if stream is None:
            raise NotFound(f"no stream with id {stream_id!r}", code="stream_not_found")
        forbid_unless(
            who.role is Role.ADMIN or stream.host_id == who.id, "only the host of this stream may do that"
        )
        return stream

    async def start_sale(self, principal: Account | None, stream_id: str, new: NewSale) -> Sale:
        stream = await self.own_stream(principal, stream_id)
        if stream.state is StreamState.ENDED:
            raise Conflict("the stream has ended", code="stream_ended")
        if new.product_id not in stream.product_ids:
            raise Invalid("product_id", "that product is not in this stream", code="product_not_in_stream")
        if new.per_viewer_limit > new.quantity:
            raise Invalid("per_viewer_limit", "cannot be more than the quantity", code="invalid_field")
        product = await self.store.get_product(new.product_id)
        if product is None:
            raise Invalid("product_id", f"no product with id {new.product_id!r}", code="unknown_product")
        try:
            sale = await self.store.create_sale(
                stream_id=stream_id,
                product_id=product.id,
                price=new.price,
                currency=product.currency,
                quantity=new.quantity,
                per_viewer_limit=new.per_viewer_limit,
                duration_s=new.duration_s,
            )
        except SaleRunning as exc:
            raise Conflict(
                "the stream already has a sale running; end it first", code="sale_running"
            ) from exc
        except NotEnoughStock as exc:
            raise Invalid(
                "quantity", f"the product has only {exc.available} in stock", code="not_enough_stock"
            ) from exc
        await self.stock.open_sale(
            sale.id, quantity=sale.quantity, per_viewer_limit=sale.per_viewer_limit, ends_at=sale.ends_at
        )
        view = await self.sale_view(sale)
        await self._announce(stream_id, "sale", msgspec.to_builtins(view))
        await self._announce(stream_id, "stock", {"product_id": sale.product_id, "remaining": view.remaining})
        return sale

    async def end_sale(self, principal: Account | None, stream_id: str, sale_id: str) -> Sale:
        await self.own_stream(principal, stream_id)
        sale = await self.store.get_sale(sale_id)
        if sale is None or sale.stream_id != stream_id:
            raise NotFound(f"no sale {sale_id!r} in this stream", code="sale_not_found")
        return await self._close_sale(sale, time.time())

    async def _close_sale(self, sale: Sale, at: float) -> Sale:
        await self.stock.end_sale(sale.id, at)
        ended = await self.store.end_sale(sale.id, at)
        if ended is None:
            return sale
        closed, first = ended
        if first:
            await self._announce(
                closed.stream_id, "sale_end", msgspec.to_builtins(await self.sale_view(closed))
            )
        return closed

    # -- orders ----------------------------------------------------------------------------------
    async def place_order(
        self, principal: Account | None, key: str | None, new: NewOrder
    ) -> tuple[Order, bool]:
        """The order and whether this call created it (False: a retry with the same key)."""
        viewer = require(principal, Role.VIEWER)
        if key is None or not key.strip():
            raise BadRequest("the Idempotency-Key header is required", code="idempotency_key_required")
        if len(key) > 200:
            raise Invalid("Idempotency-Key", "must be at most 200 characters", code="invalid_field")
        digest = request_hash(new)
        try:
            return await self._place(viewer, key, digest, new)
        except Conflict:
            # A retried tap whose first try won (and then sold the last unit, used up the
            # viewer's limit, or outlived the sale) gets its order back, not a refusal.
            # Looked up only on a refusal, so the rush path pays nothing for it.
            existing = await self.store.order_by_key(viewer.id, key)
            if existing is not None:
                return self._same_request(existing, digest), False
            raise

    async def _place(self, viewer: Account, key: str, digest: str, new: NewOrder) -> tuple[Order, bool]:
        stream = await self._stream(new.stream_id)
        if stream is None:
            raise Invalid("stream_id", f"no stream with id {new.stream_id!r}", code="unknown_stream")
        if stream.state is StreamState.ENDED:
            raise Conflict("the stream has ended", code="stream_ended")
        if new.product_id not in stream.product_ids:
            product = await self.store.get_product(new.product_id)
            if product is None:
                raise Invalid("product_id", f"no product with id {new.product_id!r}", code="unknown_product")
            raise Invalid("product_id", "that product is not in this stream", code="product_not_in_stream")
        now = time.time()
        sale = await self._sale_for(new, stream.id, now)
        if sale is not None:  # the sale fixes price and currency: no product read on the rush path
            unit_price, currency = sale.price, sale.currency
        else:
            product = await self.store.get_product(new.product_id)
            if product is None:
                raise Invalid("product_id", f"no product with id {new.product_id!r}", code="unknown_product")
            unit_price, currency = product.price, product.currency
        order_id = ids.new_id(ORDER)
        order = Order(
            id=order_id,
            viewer_id=viewer.id,
            stream_id=stream.id,
            product_id=new.product_id,
            sale_id=sale.id if sale else None,
            quantity=new.quantity,
            unit_price=unit_price,
            amount=unit_price * new.quantity,
            currency=currency,
            status=OrderStatus.PENDING_PAYMENT,
            idempotency_key=key,
            request_hash=digest,
            provider=self.provider.name,
            intent_id=None,
            client_secret=None,
            created_at=now,
            updated_at=now,
            expires_at=now + self.ttl,
            paid_at=None,
        )
        if sale is not None:
            # Taking the units first: the order row exists only for units that were there.
            await self.stock.reserve(sale.id, order_id, viewer.id, new.quantity, self.ttl)
        # The intent before the row, so the row is written once, complete. An intent whose
        # row never gets written is harmless: the buyer never saw its secret, so it is never
        # paid, and it is canceled below or simply lapses.
        try:
            intent = await self.provider.create_intent(order)
        except Exception as exc:
            log(logger, logging.WARNING, "payment intent not created", order=order_id, error=str(exc))
            if sale is not None:
                await self.stock.release(sale.id, order_id)
            raise Unavailable(
                "the payment provider does not answer; try again", code="payment_unavailable"
            ) from exc
        order = dataclasses.replace(order, intent_id=intent.id, client_secret=intent.client_secret)
        try:
            stored = await self.store.create_order(order, take_product_stock=sale is None)
        except NotEnoughStock as exc:
            await self._drop_intent(order)
            raise SoldOut("sold out" if exc.available == 0 else f"only {exc.available} left") from exc
        except BaseException:
            if sale is not None:
                await self.stock.release(sale.id, order_id)
            await self._drop_intent(order)
            raise
        if stored.id != order_id:  # the same key raced in from another request: that one wins
            if sale is not None:
                await self.stock.release(sale.id, order_id)
            await self._drop_intent(order)
            return self._same_request(stored, digest), False
        await self._announce_stock(stored)
        return stored, True

    async def forget_stream(self, stream_id: str) -> None:
        """The stream ended through this node: stop taking orders for it at once."""
        self._streams.forget(stream_id)

    async def _drop_intent(self, order: Order) -> None:
        if order.intent_id is None:
            return
        try:
            await self.provider.cancel(order.intent_id, order.id)
        except Exception as exc:  # never shown to a buyer: it cannot be paid anyway
            log(logger, logging.INFO, "unused payment intent not canceled", order=order.id, error=str(exc))

    STREAM_CACHE_S = 1.0

    async def _stream(self, stream_id: str) -> Stream | None:
        """The stream a buy names, remembered for a second: every tap of a rush names the same
        one. (An order may thus land up to a second after the stream ended; money and stock
        are never read from here.)"""
        return await self._streams.get(stream_id, functools.partial(self.store.get_stream, stream_id))

    def _same_request(self, existing: Order, digest: str) -> Order:
        if existing.request_hash != digest:
            raise Invalid(
                "Idempotency-Key", "this key was used for a different order", code="idempotency_key_reused"
            )
        return existing

    async def _sale_for(self, new: NewOrder, stream_id: str, now: float) -> Sale | None:
        if new.sale_id is not None:
            # What a sale row says never changes but its end, and the stock's own reservation
            # refuses a sale that is over (it is told the same end): a remembered row will do.
            sale = self._sales.get(new.sale_id)
            if sale is None:
                sale = await self.store.get_sale(new.sale_id)
                if sale is not None:
                    if len(self._sales) > 10_000:
                        self._sales.clear()
                    self._sales[sale.id] = sale
            if sale is None or sale.stream_id != stream_id or sale.product_id != new.product_id:
                raise Invalid("sale_id", "no such sale for this product in this stream", code="unknown_sale")
            if now >= sale.closes_at:
                raise SaleEnded("the sale is over")
            return sale
        sale = await self.store.current_sale(stream_id, now)
        return sale if sale is not None and sale.product_id == new.product_id else None

    async def get_order(self, principal: Account | None, order_id: str) -> Order:
        who = require(principal, Role.VIEWER, Role.ADMIN)
        order = await self.store.get_order(order_id)
        if order is None:
            raise NotFound(f"no order with id {order_id!r}", code="order_not_found")
        forbid_unless(who.role is Role.ADMIN or order.viewer_id == who.id, "this is another viewer's order")
        return order

    async def cancel(self, principal: Account | None, order_id: str) -> Order:
        order = await self.get_order(principal, order_id)
        forbid_unless(principal is not None and principal.id == order.viewer_id, "only the buyer may cancel")
        if order.status in (OrderStatus.PAID, OrderStatus.REFUNDED):
            raise Conflict("the order is paid; ask for a refund instead", code="order_paid")
        if order.status in FINAL:
            return order  # already over: canceling again changes nothing
        return await self._give_back(order, OrderStatus.CANCELED)

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
            await self.provider.refund(order.intent_id, order.id)  # idempotent on the provider's side
        return await self._move(order, OrderStatus.REFUNDED)

    async def pay_demo(self, principal: Account | None, order_id: str) -> Order:
        order = await self.get_order(principal, order_id)
        forbid_unless(principal is not None and principal.id == order.viewer_id, "only the buyer may pay")
        if order.provider != "demo":
            raise Conflict("this order is paid through its payment provider", code="not_demo")
        if order.status is OrderStatus.PAID:
            return order
        if order.status is not OrderStatus.PENDING_PAYMENT:
            raise Conflict(f"the order is {order.status}", code=f"order_{order.status}")
        settled = await self.settle_authorized(order)
        if settled.status is not OrderStatus.PAID:
            raise Conflict(f"the order is {settled.status}", code=f"order_{settled.status}")
        return settled

    # -- settling ----------------------------------------------------------------------------------
    async def settle_authorized(self, order: Order) -> Order:
        """The buyer's money is held: commit the units, capture, mark paid (or give it all back)."""
        if order.status is not OrderStatus.PENDING_PAYMENT:
            return order
        if order.sale_id is not None:
            hold = await self.stock.commit(order.sale_id, order.id)
            if hold is None or hold.state is HoldState.RELEASED:
                # Too late: the units went to someone else. Nobody pays for what they do not get.
                if order.intent_id:
                    await self.provider.cancel(order.intent_id, order.id)
                return await self._move(order, OrderStatus.EXPIRED)
        elif time.time() >= order.expires_at:
            if order.intent_id:
                await self.provider.cancel(order.intent_id, order.id)
            return await self._move(order, OrderStatus.EXPIRED)
        if order.intent_id:
            await self.provider.capture(order.intent_id, order.id)
        paid = await self._move(order, OrderStatus.PAID)
        return paid

    async def settle_failed(self, order: Order) -> Order:
        if order.status is not OrderStatus.PENDING_PAYMENT:
            return order
        return await self._give_back(order, OrderStatus.FAILED)

    async def _give_back(self, order: Order, to: OrderStatus) -> Order:
        """Fail, expire or cancel a pending order: units back, authorization canceled."""
        if order.sale_id is not None:
            await self.stock.release(order.sale_id, order.id)
        moved = await self._move(order, to)
        if order.intent_id and moved.status is to:
            try:
                await self.provider.cancel(order.intent_id, order.id)
            except Exception as exc:  # the intent expires on its own; the reconciler retries
                log(logger, logging.WARNING, "payment not canceled", order=order.id, error=str(exc))
        return moved

    async def _move(self, order: Order, to: OrderStatus) -> Order:
        result = await self.store.transition(order.id, to)
        if result is None:
            raise NotFound(f"no order with id {order.id!r}", code="order_not_found")
        moved, changed = result
        if changed:
            await self._after(moved)
        return moved

    async def _after(self, order: Order) -> None:
        """What the room hears when an order changes: a purchase, and the stock left."""
        if order.status is OrderStatus.PAID:
            account = await self.store.get_account(order.viewer_id)
            first_name = (account.name.split() or ["Someone"])[0] if account else "Someone"
            await self._announce(
                order.stream_id,
                "purchase",
                {"name": first_name, "product_id": order.product_id, "quantity": order.quantity},
            )
            if order.sale_id is not None:
                counts = await self.stock.counts(order.sale_id)
                if counts.sold >= counts.quantity:  # a sale that runs out ends itself
                    sale = await self.store.get_sale(order.sale_id)
                    if sale is not None:
                        await self._close_sale(sale, time.time())
        await self._announce_stock(order)

    async def _announce_stock(self, order: Order) -> None:
        """Note that the stock moved; `announce_stock` tells the room at most every tick.

        In a rush every tap moves the stock: one event per tap would cost two Redis round
        trips on the buy path and flood every viewer's socket with numbers that are stale
        a millisecond later. The latest count per tick is what a viewer needs."""
        self._stock_changed[order.product_id] = (order.stream_id, order.sale_id)

    async def announce_stock(self) -> None:
        changed, self._stock_changed = self._stock_changed, {}
        for product_id, (stream_id, sale_id) in changed.items():
            if sale_id is not None:
                remaining = (await self.stock.counts(sale_id)).remaining
            else:
                product = await self.store.get_product(product_id)
                remaining = product.stock if product else 0
            await self._announce(stream_id, "stock", {"product_id": product_id, "remaining": remaining})

    async def _announce(self, stream_id: str, type: str, data: dict[str, Any]) -> None:
        await announce(self.events, stream_id, type, data)

    # -- background chores -------------------------------------------------------------------------
    async def sweep(self) -> int:
        """Expire unpaid orders and their holds; close sales whose time is up. Returns orders expired."""
        now = time.time()
        expired = 0
        for hold in await self.stock.expire():
            order = await self.store.get_order(hold.hold_id)
            if order is not None and order.status is OrderStatus.PENDING_PAYMENT:
                await self._give_back(order, OrderStatus.EXPIRED)
                expired += 1
        for order in await self.store.pending_orders(expired_by=now):
            await self._give_back(order, OrderStatus.EXPIRED)
            expired += 1
        for sale in await self.store.sales_to_settle(now):
            closed = await self._close_sale(sale, sale.ends_at)
            counts = await self.stock.counts(closed.id)
            await self.store.return_sale_stock(closed.id, counts.remaining, settled=counts.held == 0)
        return expired

    async def reconcile(self) -> int:
        """Ask the provider about every order still waiting (lost webhooks, crashes)."""
        settled = 0
        for order in await self.store.pending_orders():
            if order.intent_id is None:
                if time.time() - order.created_at > 60:  # crashed before the intent: never payable
                    await self._give_back(order, OrderStatus.FAILED)
                    settled += 1
                continue
            intent = await self.provider.retrieve(order.intent_id)
            if intent.status in (IntentStatus.REQUIRES_CAPTURE, IntentStatus.SUCCEEDED):
                await self.settle_authorized(order)
                settled += 1
            elif intent.status is IntentStatus.CANCELED:
                await self.settle_failed(order)
                settled += 1
        return settled
