"""Stripe webhooks: verify the signature on the raw body, drop redeliveries, re-fetch, settle.

An event only says "look at this PaymentIntent": its order in time is not trusted
(a `payment_failed` may arrive after a `succeeded`), so the intent is fetched again
and its current status decides. The answer goes back at once; the settling runs
beside it, and the reconciler finishes anything a crash interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import stripe

from checkout.orders_sql import OrderStore
from checkout.payments import IntentStatus, PaymentProvider
from checkout.records import OrderStatus
from checkout.settlement import Settlement
from core.errors import BadRequest
from core.logs import log

logger = logging.getLogger("livecart.webhooks")

HANDLED = frozenset(
    {
        "payment_intent.amount_capturable_updated",  # authorized: the money is held
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.processing",
    }
)
TOLERANCE_S = 300  # a signature older than this is refused (replays)


class StripeWebhooks:
    def __init__(
        self, orders: OrderStore, settlement: Settlement, provider: PaymentProvider, secret: str
    ) -> None:
        self._orders = orders
        self._settlement = settlement
        self._provider = provider
        self._secret = secret
        self._tasks: set[asyncio.Task[None]] = set()

    def verify(self, payload: bytes, signature: str | None) -> Any:
        if not signature or not (signature.isascii() and signature.isprintable()):
            raise BadRequest("the Stripe-Signature header is missing or garbled", code="invalid_signature")
        try:
            return stripe.Webhook.construct_event(payload, signature, self._secret, tolerance=TOLERANCE_S)
        except stripe.SignatureVerificationError:
            raise BadRequest("the signature does not match this body", code="invalid_signature") from None
        except ValueError:
            raise BadRequest("the body is not a Stripe event", code="malformed_json") from None

    async def receive(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        event = self.verify(payload, signature)
        try:
            event_id, event_type = str(event.id), str(event.type)
            intent_id = str(event.data.object.id) if event_type in HANDLED else ""
        except (AttributeError, KeyError, TypeError):  # signed, but not what an event holds
            raise BadRequest("the event lacks its id, type or payment intent", code="invalid_event") from None
        if event_type not in HANDLED:
            return {"received": True, "handled": False}
        if await self._orders.webhook_event_seen(event_id):
            return {"received": True, "handled": False, "duplicate": True}
        task = asyncio.create_task(self._settle(event_id, event_type, intent_id), name=f"webhook-{event_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return {"received": True, "handled": True}

    async def _settle(self, event_id: str, event_type: str, intent_id: str) -> None:
        """Settle the order the event is about, then remember the event: only an event that
        was processed is dropped as a duplicate when Stripe delivers it again."""
        try:
            await self._settle_intent(intent_id)
            await self._orders.record_webhook_event(event_id, event_type)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the reconciler will see the order still waiting
            log(logger, logging.WARNING, "webhook settling failed", intent=intent_id, error=str(exc))

    async def _settle_intent(self, intent_id: str) -> None:
        intent = await self._provider.retrieve(intent_id)
        order = await self._orders.order_by_intent(intent_id)
        if order is None and intent.order_id:
            order = await self._orders.get_order(intent.order_id)
        if order is None or order.status is not OrderStatus.PENDING_PAYMENT:
            return
        if intent.status in (IntentStatus.REQUIRES_CAPTURE, IntentStatus.SUCCEEDED):
            await self._settlement.authorized(order)
        elif intent.status is IntentStatus.CANCELED:
            await self._settlement.failed(order)
        # requires_payment_method after a failure: the buyer may try another card

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
