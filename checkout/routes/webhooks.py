"""HTTP edge of Stripe's webhooks: the raw body, as the signature covers it exactly."""

from __future__ import annotations

from aiohttp import web

from checkout.app import SHOP
from core.errors import NotFound
from core.http import Route, json_response, read_body


async def stripe_webhook(request: web.Request) -> web.Response:
    webhooks = request.app[SHOP].webhooks
    if webhooks is None:
        raise NotFound("this server takes no Stripe payments", code="stripe_not_configured")
    payload = await read_body(request)
    return json_response(await webhooks.receive(payload, request.headers.get("Stripe-Signature")))


ROUTES = [
    Route(
        "POST",
        "/api/webhooks/stripe",
        stripe_webhook,
        "Stripe events (signature-verified)",
        "checkout",
        roles=("Stripe",),
        errors=(400, 404, 413, 415),
    )
]
