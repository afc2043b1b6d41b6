"""The app factory: every long-lived part of livecart, wired once, held in typed AppKeys."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from importlib.metadata import version

from aiohttp import WSCloseCode, web

from chat import ws as chat_routes
from chat.broker import Broker
from chat.broker_memory import MemoryBroker
from chat.broker_redis import RedisBroker, connect
from chat.hub import Hub, HubSettings
from chat.roomstate import MemoryRoomState, RoomState
from chat.roomstate_redis import RedisRoomState
from chat.session import ChatLimits
from checkout import routes as checkout_routes
from checkout.accounts import Authenticator
from checkout.catalog import Catalog
from checkout.checkout import Checkout
from checkout.payments import DemoProvider, PaymentProvider
from checkout.payments_stripe import StripeProvider
from checkout.stock import MemoryStock, Stock
from checkout.stock_redis import RedisStock
from checkout.store import Store, open_store
from checkout.webhooks import StripeWebhooks
from config.settings import Settings
from server import health, keys, openapi
from server.chores import Chores
from server.metrics import Metrics
from server.middleware import IN_FLIGHT, InFlight, cors, errors, observe
from server.routing import Route
from streaming import routes as streaming_routes
from streaming import webrtc_routes
from streaming.streams import Streams

HUB_SETTINGS: web.AppKey[HubSettings] = web.AppKey("hub_settings")
SWEEP_INTERVAL_S = 1.0  # unpaid orders expire within a second of their time
STOCK_TICK_S = 0.2  # the room hears the stock left at most this often (once per tick in a rush)
RECONCILE_INTERVAL_S = 30.0  # and the provider is asked about waiting orders this often


def all_routes() -> list[Route]:
    return [
        *health.ROUTES,
        *openapi.ROUTES,
        *checkout_routes.ROUTES,
        *streaming_routes.ROUTES,
        *webrtc_routes.ROUTES,
        *chat_routes.ROUTES,
    ]


def create_app(
    settings: Settings, *, hub_settings: HubSettings | None = None, chat_limits: ChatLimits | None = None
) -> web.Application:
    """The whole server. `hub_settings` and `chat_limits` tune rooms beyond the settings (tests)."""
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[observe, cors, errors])
    app[keys.SETTINGS] = settings
    app[HUB_SETTINGS] = hub_settings or HubSettings(send_buffer_limit=settings.ws_send_buffer_bytes)
    app[keys.METRICS] = Metrics()
    app[keys.WEBSOCKETS] = weakref.WeakSet()
    app[IN_FLIGHT] = InFlight()
    app[health.READINESS] = {}
    app[keys.CHAT_LIMITS] = chat_limits or ChatLimits(
        chat_per_s=settings.chat_rate_per_s, chat_burst=settings.chat_burst
    )

    routes = all_routes()
    for route in routes:
        app.router.add_route(route.method, route.path, route.handler)
    app[keys.ROUTES] = routes
    app[openapi.DOCUMENT] = openapi.build(routes, version("livecart"))
    if health.STATIC_DIR.is_dir():
        app.router.add_static("/static/", health.STATIC_DIR)

    app.cleanup_ctx.append(_services_ctx)
    webrtc_routes.setup(app)  # after _services_ctx: the relay uses Streams
    app.on_shutdown.append(_close_websockets)
    return app


def _provider(settings: Settings) -> PaymentProvider:
    """Stripe when a secret key is set; otherwise the demo provider, which moves no money."""
    if settings.stripe_secret_key:
        return StripeProvider(
            settings.stripe_secret_key, settings.stripe_publishable_key, settings.stripe_api_base
        )
    return DemoProvider()


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    store: Store = await open_store(settings.effective_database_url)
    client = connect(settings.redis_url) if settings.redis_url else None
    try:
        broker: Broker
        state: RoomState
        if client is not None:
            assert settings.redis_url is not None
            broker = RedisBroker(settings.redis_url, client=client)
            state = RedisRoomState(client)
        else:
            broker, state = MemoryBroker(), MemoryRoomState()
        hub = Hub(broker, state, app[HUB_SETTINGS])
        app[keys.STORE] = store
        app[keys.HUB] = hub
        app[keys.AUTH] = Authenticator(store, settings.admin_token)
        app[keys.CATALOG] = Catalog(store)
        stock: Stock = RedisStock(client) if client is not None else MemoryStock()
        checkout = Checkout(
            store, stock, _provider(settings), hub, reservation_ttl_s=settings.reservation_ttl_s
        )
        app[keys.CHECKOUT] = checkout
        webhooks = None
        if settings.stripe_secret_key and settings.stripe_webhook_secret:
            webhooks = StripeWebhooks(checkout, settings.stripe_webhook_secret)
        app[keys.WEBHOOKS] = webhooks
        app[keys.STREAMS] = Streams(
            store,
            settings.effective_public_url,
            events=hub,
            viewers=hub.viewers,
            sales=checkout.current_sale_view,
        )
        app[keys.STREAMS].ended_listeners.append(checkout.forget_stream)
        app[keys.METRICS].track_hub(hub)
        checks = app[health.READINESS]
        checks["database"] = store.ping
        if client is not None:
            checks["redis"] = broker.ping
        await hub.start()
        chores = Chores()
        chores.every(SWEEP_INTERVAL_S, checkout.sweep, "checkout-sweep")
        chores.every(STOCK_TICK_S, checkout.announce_stock, "checkout-stock")
        chores.every(RECONCILE_INTERVAL_S, checkout.reconcile, "checkout-reconcile", first=0.0)
        try:
            yield
        finally:
            await chores.stop()
            if webhooks is not None:
                await webhooks.close()
            await hub.close()
            await checkout.provider.close()
    finally:
        if client is not None:
            await client.aclose()
        await store.close()


async def drain(app: web.Application, timeout: float) -> bool:
    """Close WebSockets (1001), then wait up to `timeout` for requests being handled.

    aiohttp's own shutdown stops reading from every connection at once, so a request
    whose body is still arriving would never finish; draining first lets it.
    Returns whether everything finished in time.
    """
    await _close_websockets(app)
    return await app[IN_FLIGHT].wait_idle(timeout)


async def _close_websockets(app: web.Application, timeout: float = 5.0) -> None:
    """Send every socket a 1001 close at once and give the peers `timeout` to answer."""
    open_sockets = app[keys.WEBSOCKETS]
    sockets = list(open_sockets)
    if not sockets:
        return
    closing = [
        asyncio.create_task(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down"))
        for ws in sockets
    ]
    _, pending = await asyncio.wait(closing, timeout=timeout)
    for task in pending:
        task.cancel()
