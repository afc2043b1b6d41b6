"""Stripe, through the official SDK's async calls.

PaymentIntents are created with `capture_method=manual` and `metadata.order_id`, and
every call that changes something carries an idempotency key derived from the order
id, so a retry after a timeout can never create a second intent or capture twice.
"""

from __future__ import annotations

from typing import Any

import stripe

from checkout.payments import Intent, IntentStatus
from checkout.records import Order
from core.errors import Unavailable

_STATUS = {
    "requires_payment_method": IntentStatus.REQUIRES_PAYMENT,
    "requires_confirmation": IntentStatus.REQUIRES_PAYMENT,
    "requires_action": IntentStatus.REQUIRES_PAYMENT,
    "processing": IntentStatus.PROCESSING,
    "requires_capture": IntentStatus.REQUIRES_CAPTURE,
    "succeeded": IntentStatus.SUCCEEDED,
    "canceled": IntentStatus.CANCELED,
}
_CANCELABLE = {"requires_payment_method", "requires_confirmation", "requires_action", "requires_capture"}


def _intent(pi: Any) -> Intent:
    metadata = pi.metadata.to_dict() if pi.metadata else {}
    return Intent(
        pi.id, _STATUS.get(pi.status, IntentStatus.PROCESSING), pi.client_secret, metadata.get("order_id")
    )


class StripeProvider:
    name = "stripe"

    def __init__(self, secret_key: str, publishable_key: str | None, api_base: str | None = None) -> None:
        self.publishable_key = publishable_key
        self._http = stripe.AIOHTTPClient()
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base} if api_base else {},
            http_client=self._http,
            max_network_retries=2,  # the SDK retries with the same idempotency key
        )

    async def _call(self, request: Any) -> Any:
        try:
            return await request
        except stripe.APIConnectionError as exc:
            raise Unavailable(
                f"Stripe does not answer: {exc.user_message or exc}", code="payment_unavailable"
            ) from None

    async def create_intent(self, order: Order) -> Intent:
        pi = await self._call(
            self._client.v1.payment_intents.create_async(
                params={
                    "amount": order.amount,
                    "currency": order.currency.lower(),
                    "capture_method": "manual",
                    "metadata": {"order_id": order.id, "stream_id": order.stream_id},
                },
                options={"idempotency_key": f"livecart-intent-{order.id}"},
            )
        )
        return _intent(pi)

    async def retrieve(self, intent_id: str) -> Intent:
        return _intent(await self._call(self._client.v1.payment_intents.retrieve_async(intent_id)))

    async def capture(self, intent_id: str, order_id: str) -> Intent:
        pi = await self._call(self._client.v1.payment_intents.retrieve_async(intent_id))
        if pi.status == "requires_capture":
            pi = await self._call(
                self._client.v1.payment_intents.capture_async(
                    intent_id, options={"idempotency_key": f"livecart-capture-{order_id}"}
                )
            )
        return _intent(pi)

    async def cancel(self, intent_id: str, order_id: str) -> Intent:
        """Release the buyer's money whatever state it is in: cancel an authorization,
        refund a capture."""
        pi = await self._call(self._client.v1.payment_intents.retrieve_async(intent_id))
        if pi.status in _CANCELABLE:
            pi = await self._call(
                self._client.v1.payment_intents.cancel_async(
                    intent_id, options={"idempotency_key": f"livecart-cancel-{order_id}"}
                )
            )
        elif pi.status == "succeeded":
            await self.refund(intent_id, order_id)
        return _intent(pi)

    async def refund(self, intent_id: str, order_id: str) -> None:
        await self._call(
            self._client.v1.refunds.create_async(
                params={"payment_intent": intent_id},
                options={"idempotency_key": f"livecart-refund-{order_id}"},
            )
        )

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]
