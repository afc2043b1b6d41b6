"""Settling orders: what happens to money, stock and the room when an order stops waiting.

Paid: commit the units, capture the money, mark the order `paid` — each step idempotent,
in that order, so a crash between any two is finished by the next webhook, sweep or
reconcile. A hold that was lost (expired) is never paid for: the authorization is canceled
instead. Failed, expired or canceled: the units go back and the authorization is released.
Every move is the order store's compare-and-set, so only the call that made it tells the room.
"""

from __future__ import annotations

import logging
import time

from chat.announce import Publisher, announce
from checkout.orders_sql import OrderStore
from checkout.payments import PaymentProvider
from checkout.records import Order, OrderStatus
from checkout.sales import Sales
from checkout.stock import HoldState, Stock
from checkout.ticker import StockTicker
from core import events
from core.accounts import AccountStore
from core.errors import NotFound
from core.logs import log

logger = logging.getLogger("livecart.checkout")


class Settlement:
    def __init__(
        self,
        orders: OrderStore,
        stock: Stock,
        provider: PaymentProvider,
        sales: Sales,
        ticker: StockTicker,
        accounts: AccountStore,
        rooms: Publisher,
    ) -> None:
        self._orders = orders
        self._stock = stock
        self._provider = provider
        self._sales = sales
        self._ticker = ticker
        self._accounts = accounts
        self._rooms = rooms

    async def authorized(self, order: Order) -> Order:
        """The buyer's money is held: commit the units, capture, mark paid (or give it all back)."""
        if order.status is not OrderStatus.PENDING_PAYMENT:
            return order
        if order.sale_id is not None:
            hold = await self._stock.commit(order.sale_id, order.id)
            if hold is None or hold.state is HoldState.RELEASED:
                # Too late: the units went to someone else. Nobody pays for what they do not get.
                if order.intent_id:
                    await self._provider.cancel(order.intent_id, order.id)
                return await self.move(order, OrderStatus.EXPIRED)
        elif time.time() >= order.expires_at:
            if order.intent_id:
                await self._provider.cancel(order.intent_id, order.id)
            return await self.move(order, OrderStatus.EXPIRED)
        if order.intent_id:
            await self._provider.capture(order.intent_id, order.id)
        return await self.move(order, OrderStatus.PAID)

    async def failed(self, order: Order) -> Order:
        if order.status is not OrderStatus.PENDING_PAYMENT:
            return order
        return await self.give_back(order, OrderStatus.FAILED)

    async def give_back(self, order: Order, to: OrderStatus) -> Order:
        """Fail, expire or cancel a pending order: units back, authorization canceled."""
        if order.sale_id is not None:
            await self._stock.release(order.sale_id, order.id)
        moved = await self.move(order, to)
        if order.intent_id and moved.status is to:
            try:
                await self._provider.cancel(order.intent_id, order.id)
            except Exception as exc:  # the intent expires on its own; the reconciler retries
                log(logger, logging.WARNING, "payment not canceled", order=order.id, error=str(exc))
        return moved

    async def move(self, order: Order, to: OrderStatus) -> Order:
        result = await self._orders.transition(order.id, to)
        if result is None:
            raise NotFound(f"no order with id {order.id!r}", code="order_not_found")
        moved, changed = result
        if changed:
            await self._after(moved)
        return moved

    async def _after(self, order: Order) -> None:
        """What the room hears when an order changes: a purchase, and the stock left."""
        if order.status is OrderStatus.PAID:
            account = await self._accounts.get_account(order.viewer_id)
            first_name = (account.name.split() or ["Someone"])[0] if account else "Someone"
            bought = events.Purchase(name=first_name, product_id=order.product_id, quantity=order.quantity)
            await announce(self._rooms, order.stream_id, events.PURCHASE, bought)
            if order.sale_id is not None:
                counts = await self._stock.counts(order.sale_id)
                if counts.sold >= counts.quantity:  # a sale that runs out ends itself
                    sale = await self._sales.store.get_sale(order.sale_id)
                    if sale is not None:
                        await self._sales.close(sale, time.time())
        self._ticker.note(order)
