"""Settling orders: what happens to money, stock and the room when an order stops waiting.

One question decides every race on an order: who moved its row first. Paying starts by
*claiming* the pending order (`OrderStore.claim`: its money is held); giving back (a cancel,
a failed payment, the expiry sweep) starts by moving the unclaimed pending order to its end
state. Both are compare-and-sets on the same row, so exactly one side wins, and only the
winner touches units and money:

- Paid: claim, commit the units, capture the money, mark `paid` — each step idempotent, in
  that order, so a crash between any two is finished by the next webhook or the reconciler
  (a claimed order is finished without asking the provider: the claim says it was paid).
  A hold that was lost (expired) is never paid for: the authorization is canceled and the
  order expires instead.
- Failed, expired or canceled: move the row, then the units go back and the authorization
  is canceled. A claimed order is not given back: the payment is going through.

Every move is the order store's compare-and-set, so only the call that made it tells the room.
"""

from __future__ import annotations

import logging
import time

from chat.announce import Publisher, announce
from checkout.orders_sql import OrderStore
from checkout.payments import PaymentProvider
from checkout.records import STOCK_RETURNED, Order, OrderStatus
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
        """The buyer's money is held: claim the order, commit the units, capture, mark paid."""
        if order.status is not OrderStatus.PENDING_PAYMENT:
            return order
        claimed = await self._orders.claim(order.id)
        if claimed is None:
            raise NotFound(f"no order with id {order.id!r}", code="order_not_found")
        if claimed.status is not OrderStatus.PENDING_PAYMENT:
            # Given back first (canceled, failed, expired): whatever the provider holds for it
            # goes back too. Idempotent, and harmless when it was released already.
            if claimed.status in STOCK_RETURNED and claimed.intent_id:
                await self._provider.cancel(claimed.intent_id, claimed.id)
            return claimed
        if claimed.sale_id is not None:
            hold = await self._stock.commit(claimed.sale_id, claimed.id)
            if hold is None or hold.state is HoldState.RELEASED:
                # Too late: the units went to someone else. Nobody pays for what they do not get.
                return await self._lost(claimed)
        elif time.time() >= claimed.expires_at:
            return await self._lost(claimed)
        if claimed.intent_id:
            await self._provider.capture(claimed.intent_id, claimed.id)
        return await self.move(claimed, OrderStatus.PAID)

    async def _lost(self, order: Order) -> Order:
        if order.intent_id:
            await self._provider.cancel(order.intent_id, order.id)
        return await self.move(order, OrderStatus.EXPIRED)

    async def failed(self, order: Order) -> Order:
        if order.status is not OrderStatus.PENDING_PAYMENT:
            return order
        return await self.give_back(order, OrderStatus.FAILED)

    async def give_back(self, order: Order, to: OrderStatus) -> Order:
        """Fail, expire or cancel a pending order nobody is paying for: the row first, then
        the units back and the authorization canceled. Returns the order as it now is: not
        `to` when it was claimed or had moved on (paid, say) before this call."""
        moved = await self.move(order, to, unless_claimed=True)
        if moved.status is not to:
            return moved
        if order.sale_id is not None:
            await self._stock.release(order.sale_id, order.id)
        if order.intent_id:
            try:
                await self._provider.cancel(order.intent_id, order.id)
            except Exception as exc:  # the intent expires on its own; the reconciler retries
                log(logger, logging.WARNING, "payment not canceled", order=order.id, error=str(exc))
        return moved

    async def move(self, order: Order, to: OrderStatus, *, unless_claimed: bool = False) -> Order:
        result = await self._orders.transition(order.id, to, unless_claimed=unless_claimed)
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
