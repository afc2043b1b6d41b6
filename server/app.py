"""The composition root: every package's routes and running parts, wired once into one app.

Each package exports its routes (`<package>.routes.ROUTES`) and its cleanup context
(`<package>.app.running`), and declares what it needs of a sibling as a small protocol; this
is the one module that knows every package, so it is where those protocols meet their
implementations: checkout asks streaming's stream store about streams, streaming asks
checkout's catalog and sales for product cards and the running sale, and a stream's room
asks streaming's stream bodies about its subject.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import weakref
from collections.abc import AsyncIterator
from importlib.metadata import version

from aiohttp import WSCloseCode, web

import chat.app
import checkout.app
import streaming.app
from chat import routes as chat_routes
from chat.hub import HubSettings
from chat.session import ChatLimits
from checkout import routes as checkout_routes
from checkout.routes.orders import RoomCheckout
from config.settings import Settings
from core import routes as account_routes
from core.accounts import AccountStore, Authenticator
from core.db.driver import Driver
from core.http import ACCOUNTS, AUTH, METRICS, READINESS, SETTINGS, WEBSOCKETS, Route
from core.metrics import Metrics
from core.redis import check_ready, connect
from server import health, openapi, pages, protocol_errors
from server.database import open_database
from server.middleware import IN_FLIGHT, InFlight, cors, errors, observe
from streaming import routes as streaming_routes
from streaming.routes import webrtc
from streaming.streams_sql import StreamStore

DATABASE: web.AppKey[Driver] = web.AppKey("database")


def all_routes() -> list[Route]:
    return [
        *health.ROUTES,
        *pages.ROUTES,
        *openapi.ROUTES,
        *account_routes.ROUTES,
        *checkout_routes.ROUTES,
        *streaming_routes.ROUTES,
        *chat_routes.ROUTES,
    ]


def create_app(
    settings: Settings, *, hub_settings: HubSettings | None = None, chat_limits: ChatLimits | None = None
) -> web.Application:
    """The whole server. `hub_settings` and `chat_limits` tune rooms beyond the settings (tests)."""
    protocol_errors.install()
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[observe, cors, errors])
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[WEBSOCKETS] = weakref.WeakSet()
    app[IN_FLIGHT] = InFlight()
    app[READINESS] = {}

    routes = all_routes()
    # The router tries the routes under one path prefix in the order they were added: LL-HLS
    # (a thousand players' requests a second per stream) goes first under /api/streams.
    for route in sorted(routes, key=lambda r: "/hls/" not in r.path):
        app.router.add_route(route.method, route.path, route.handler)
    webrtc.add_options(app)
    app[openapi.DOCUMENT] = openapi.build(routes, version("livecart"))
    if pages.STATIC_DIR.is_dir():
        app.router.add_static("/static/", pages.STATIC_DIR)

    app.cleanup_ctx.append(functools.partial(_running, hub_settings=hub_settings, chat_limits=chat_limits))
    app.on_shutdown.append(_close_websockets)
    return app


async def _running(
    app: web.Application, *, hub_settings: HubSettings | None, chat_limits: ChatLimits | None
) -> AsyncIterator[None]:
    """Start every part in the order they depend on each other; stop them in reverse."""
    settings = app[SETTINGS]
    async with contextlib.AsyncExitStack() as stack:
        db = await open_database(
            settings.effective_database_url,
            statement_timeout_s=settings.database_statement_timeout_s,
            pool_timeout_s=settings.database_pool_timeout_s,
        )
        stack.push_async_callback(db.close)
        app[DATABASE] = db
        app[READINESS]["database"] = db.ping
        client = None
        if settings.redis_url:
            client = connect(settings.redis_url, cluster=settings.redis_cluster)
            stack.push_async_callback(client.aclose)
            app[READINESS]["redis"] = functools.partial(check_ready, client)
        accounts = AccountStore(db)
        app[ACCOUNTS] = accounts
        app[AUTH] = Authenticator(accounts, settings.admin_token)

        hub = await stack.enter_async_context(
            chat.app.running(app, settings, client, hub_settings=hub_settings, chat_limits=chat_limits)
        )
        stream_store = StreamStore(db)
        shop = await stack.enter_async_context(
            checkout.app.running(
                app,
                settings,
                db,
                client,
                accounts=accounts,
                streams=stream_store,
                rooms=hub,
                feeds=hub,
                audience=hub.state,
            )
        )
        show = await stack.enter_async_context(
            streaming.app.running(
                app,
                settings,
                stream_store,
                client,
                products=shop.catalog,
                sales=shop.sales,
                viewers=hub.viewers,
                names=accounts.names,
                rooms=hub,
                history=hub.broker.history,
            )
        )
        show.streams.ended_listeners.append(shop.orders.forget_stream)
        show.streams.ended_listeners.append(shop.figures.freeze)  # before the sale closes: its units left
        show.streams.ended_listeners.append(shop.sales.stream_ended)
        app[chat.app.SUBJECTS] = show.views
        app[chat.app.CHECKOUT] = RoomCheckout(shop)
        yield


async def drain(app: web.Application, timeout: float) -> bool:
    """Refuse new requests (503, connection closed), close WebSockets (1001), then wait up to
    `timeout` for the requests being handled.

    aiohttp's own shutdown stops reading from every connection at once, so a request
    whose body is still arriving would never finish; draining first lets it.
    Returns whether everything finished in time.
    """
    app[IN_FLIGHT].draining = True
    await _close_websockets(app)
    return await app[IN_FLIGHT].wait_idle(timeout)


async def _close_websockets(app: web.Application, timeout: float = 5.0) -> None:
    """Send every socket a 1001 close at once and give the peers `timeout` to answer."""
    open_sockets = app[WEBSOCKETS]
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
