"""Typed application state: every long-lived part of the server, as an aiohttp AppKey."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from chat.hub import Hub
    from chat.session import ChatLimits
    from checkout.accounts import Authenticator
    from checkout.catalog import Catalog
    from checkout.checkout import Checkout
    from checkout.store import Store
    from checkout.webhooks import StripeWebhooks
    from config.settings import Settings
    from server.metrics import Metrics
    from server.routing import Route
    from streaming.sessions import RelaySettings, Sessions
    from streaming.streams import Streams

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
STORE: web.AppKey[Store] = web.AppKey("store")
AUTH: web.AppKey[Authenticator] = web.AppKey("auth")
CATALOG: web.AppKey[Catalog] = web.AppKey("catalog")
STREAMS: web.AppKey[Streams] = web.AppKey("streams")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
HUB: web.AppKey[Hub] = web.AppKey("hub")
CHECKOUT: web.AppKey[Checkout] = web.AppKey("checkout")
WEBHOOKS: web.AppKey[StripeWebhooks | None] = web.AppKey("webhooks")  # None: no Stripe
CHAT_LIMITS: web.AppKey[ChatLimits] = web.AppKey("chat_limits")
ROUTES: web.AppKey[list[Route]] = web.AppKey("routes")
# Open WebSockets, closed with 1001 (going away) when the server shuts down.
WEBSOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("websockets")
# WHIP/WHEP sessions and stream relays of this node; RELAY_SETTINGS overrides the relay's timing
# (tests), None = from SETTINGS.
RELAY: web.AppKey[Sessions] = web.AppKey("relay")
RELAY_SETTINGS: web.AppKey[RelaySettings | None] = web.AppKey("relay_settings")
