"""What checkout adds to the app: its parts, built once on the backends the settings name.

`running()` is checkout's cleanup context, entered by server/app.py: stock in-process or in
Redis, payments through the demo provider or Stripe, and the background chores (sweep,
stock ticker, reconcile, sales feed). What checkout needs of the streams it asks through
`checkout.streams.StreamLookup`, handed in by server/app.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from chat.announce import Publisher, Watcher
from checkout.catalog import Catalog
from checkout.catalog_sql import ProductStore
from checkout.feed import FEED_TICK_S, SalesFeed
from checkout.figures import Audience, Figures
from checkout.grants import Grants
from checkout.grants_sql import GrantStore
from checkout.orders import Orders
from checkout.orders_sql import OrderStore
from checkout.payments import DemoProvider, PaymentProvider
from checkout.payments_stripe import StripeProvider
from checkout.reports import Reports
from checkout.reports_sql import ReportStore
from checkout.sales import Sales
from checkout.sales_sql import SaleStore
from checkout.settlement import Settlement
from checkout.stock import MemoryStock, Stock
from checkout.stock_redis import RedisStock
from checkout.streams import StreamLookup
from checkout.ticker import StockTicker
from checkout.upkeep import RECONCILE_INTERVAL_S, STOCK_TICK_S, SWEEP_INTERVAL_S, Upkeep
from checkout.webhooks import StripeWebhooks
from config.settings import Settings
from core.accounts import AccountStore
from core.chores import Chores
from core.db.driver import Driver
from core.redis import Client


@dataclass(frozen=True)
class Shop:
    """The running checkout, part by part."""

    catalog: Catalog
    grants: Grants
    sales: Sales
    orders: Orders
    settlement: Settlement
    upkeep: Upkeep
    ticker: StockTicker
    stock: Stock
    provider: PaymentProvider
    webhooks: StripeWebhooks | None  # None: no Stripe, or no webhook secret
    figures: Figures
    feed: SalesFeed
    reports: Reports


SHOP: web.AppKey[Shop] = web.AppKey("shop")


def _provider(settings: Settings) -> PaymentProvider:
    """Stripe when a secret key is set; otherwise the demo provider, which moves no money."""
    if settings.stripe_secret_key:
        return StripeProvider(
            settings.stripe_secret_key, settings.stripe_publishable_key, settings.stripe_api_base
        )
    return DemoProvider()


@asynccontextmanager
async def running(
    app: web.Application,
    settings: Settings,
    db: Driver,
    client: Client | None,
    *,
    accounts: AccountStore,
    streams: StreamLookup,
    rooms: Publisher,
    feeds: Watcher,
    audience: Audience,
) -> AsyncIterator[Shop]:
    stock: Stock = RedisStock(client) if client is not None else MemoryStock()
    provider = _provider(settings)
    products, order_store = ProductStore(db), OrderStore(db)
    ticker = StockTicker(stock, products, rooms, feeds)
    grant_store = GrantStore(db)
    sales = Sales(SaleStore(db), products, stock, streams, rooms, grant_store)
    settlement = Settlement(order_store, stock, provider, sales, ticker, accounts, rooms)
    orders = Orders(
        order_store,
        products,
        stock,
        provider,
        streams,
        sales,
        settlement,
        ticker,
        grant_store,
        reservation_ttl_s=settings.reservation_ttl_s,
        sale_hold_ttl_s=settings.sale_hold_ttl_s,
        max_order_quantity=settings.max_order_quantity,
        max_held_units=settings.max_held_units,
    )
    webhooks = None
    if settings.stripe_secret_key and settings.stripe_webhook_secret:
        webhooks = StripeWebhooks(order_store, settlement, provider, settings.stripe_webhook_secret)
    upkeep = Upkeep(order_store, stock, sales, settlement, provider)
    reports = ReportStore(db)
    figures = Figures(order_store, products, sales, streams, audience, reports, feeds)
    shop = Shop(
        Catalog(products, accounts, grant_store),
        Grants(grant_store, accounts, sales, streams),
        sales,
        orders,
        settlement,
        upkeep,
        ticker,
        stock,
        provider,
        webhooks,
        figures,
        SalesFeed(figures, feeds),
        Reports(figures, reports, products, accounts),
    )
    app[SHOP] = shop
    chores = Chores()
    chores.every(SWEEP_INTERVAL_S, upkeep.sweep, "checkout-sweep")
    chores.every(STOCK_TICK_S, ticker.announce, "checkout-stock")
    chores.every(FEED_TICK_S, shop.feed.tick, "checkout-sales-feed")
    chores.every(RECONCILE_INTERVAL_S, upkeep.reconcile, "checkout-reconcile", first=0.0)
    try:
        yield shop
    finally:
        await chores.stop()
        if webhooks is not None:
            await webhooks.close()
        await order_store.drain()  # rush orders already accepted are written first
        await provider.close()
        await stock.close()
