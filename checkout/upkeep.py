"""Checkout's background chores: expire what went unpaid, close sales whose time is up, and
ask the provider about orders still waiting (a lost webhook, a crash between two steps).

Run by checkout/app.py on `core.chores.Chores`: each logs and goes on, never dies quietly.
"""

from __future__ import annotations

import time

from checkout.orders_sql import OrderStore
from checkout.payments import IntentStatus, PaymentProvider
from checkout.records import OrderStatus
from checkout.sales import Sales
from checkout.settlement import Settlement
from checkout.stock import Stock

SWEEP_INTERVAL_S = 1.0  # unpaid orders expire within a second of their time
STOCK_TICK_S = 0.2  # the room hears the stock left at most this often (once per tick in a rush)
RECONCILE_INTERVAL_S = 30.0  # and the provider is asked about waiting orders this often
NEVER_PAYABLE_AFTER_S = 60.0  # an order without an intent this old crashed before it got one
FINISH_CLAIMED_AFTER_S = 10.0  # a payment claimed this long ago and not finished crashed midway


class Upkeep:
    def __init__(
        self,
        orders: OrderStore,
        stock: Stock,
        sales: Sales,
        settlement: Settlement,
        provider: PaymentProvider,
    ) -> None:
        self._orders = orders
        self._stock = stock
        self._sales = sales
        self._settlement = settlement
        self._provider = provider

    async def sweep(self) -> int:
        """Expire unpaid orders and their holds; close sales whose time is up. Returns orders expired."""
        now = time.time()
        expired = 0
        for hold in await self._stock.expire():
            order = await self._orders.get_order(hold.hold_id)
            if order is not None and order.status is OrderStatus.PENDING_PAYMENT:
                # A claimed order is left to its payment, which finds the hold lost.
                moved = await self._settlement.give_back(order, OrderStatus.EXPIRED)
                expired += moved.status is OrderStatus.EXPIRED
        for order in await self._orders.pending_orders(expired_by=now):
            moved = await self._settlement.give_back(order, OrderStatus.EXPIRED)
            expired += moved.status is OrderStatus.EXPIRED
        for sale in await self._sales.store.sales_to_settle(now):
            closed = await self._sales.close(sale, sale.ends_at)
            counts = await self._stock.counts(closed.id)
            await self._sales.store.return_sale_stock(closed.id, counts.remaining, settled=counts.held == 0)
        return expired

    async def reconcile(self) -> int:
        """Ask the provider about every order still waiting (lost webhooks, crashes)."""
        settled = 0
        for order in await self._orders.pending_orders():
            if order.authorized_at is not None:
                # Claimed, then left unfinished (a crash): its money is held, so finish paying.
                if time.time() - order.authorized_at > FINISH_CLAIMED_AFTER_S:
                    await self._settlement.authorized(order)
                    settled += 1
                continue
            if order.intent_id is None:
                if time.time() - order.created_at > NEVER_PAYABLE_AFTER_S:
                    await self._settlement.give_back(order, OrderStatus.FAILED)
                    settled += 1
                continue
            intent = await self._provider.retrieve(order.intent_id)
            if intent.status in (IntentStatus.REQUIRES_CAPTURE, IntentStatus.SUCCEEDED):
                await self._settlement.authorized(order)
                settled += 1
            elif intent.status is IntentStatus.CANCELED:
                await self._settlement.failed(order)
                settled += 1
        return settled
