"""The app factory: every long-lived part of livecart, wired once, held in typed AppKeys."""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator
from importlib.metadata import version

from aiohttp import WSCloseCode, web

from checkout import routes as checkout_routes
from checkout.accounts import Authenticator
from checkout.catalog import Catalog
from checkout.store import Store, open_store
from config.settings import Settings
from server import health, keys, openapi
from server.metrics import Metrics
from server.middleware import IN_FLIGHT, InFlight, cors, errors, observe
from server.routing import Route
from streaming import routes as streaming_routes
from streaming.streams import Streams


def all_routes() -> list[Route]:
    return [
        *health.ROUTES,
        *openapi.ROUTES,
        *checkout_routes.ROUTES,
        *streaming_routes.ROUTES,
    ]


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[observe, cors, errors])
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = Metrics()
    app[keys.WEBSOCKETS] = weakref.WeakSet()
    app[IN_FLIGHT] = InFlight()
    app[health.READINESS] = {}

    routes = all_routes()
    for route in routes:
        app.router.add_route(route.method, route.path, route.handler)
    app[keys.ROUTES] = routes
    app[openapi.DOCUMENT] = openapi.build(routes, version("livecart"))
    if health.STATIC_DIR.is_dir():
        app.router.add_static("/static/", health.STATIC_DIR)

    app.cleanup_ctx.append(_store_ctx)
    app.on_shutdown.append(_close_websockets)
    return app


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    store: Store = await open_store(settings.effective_database_url)
    app[keys.STORE] = store
    app[keys.AUTH] = Authenticator(store, settings.admin_token)
    app[keys.CATALOG] = Catalog(store)
    app[keys.STREAMS] = Streams(store, settings.effective_public_url)
    app[health.READINESS]["database"] = store.ping
    try:
        yield
    finally:
        await store.close()


async def drain(app: web.Application, timeout: float) -> bool:
    """Close WebSockets (1001), then wait up to `timeout` for requests being handled.

    aiohttp's own shutdown stops reading from every connection at once, so a request
    whose body is still arriving would never finish; draining first lets it.
    Returns whether everything finished in time.
    """
    await _close_websockets(app)
    return await app[IN_FLIGHT].wait_idle(timeout)


async def _close_websockets(app: web.Application) -> None:
    open_sockets = app[keys.WEBSOCKETS]
    for ws in list(open_sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
