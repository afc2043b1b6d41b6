"""Payment providers: one protocol, a demo provider (the default) and Stripe.

The money is held, not taken, when a buyer pays (`capture_method=manual`): it is
captured only once the stock hold has committed, and the authorization is
canceled when the hold was lost, so nobody is charged for units they do not get.
Every call is idempotent on the provider's side (keys derived from the order id).

The demo provider moves no money: it approves through
`POST /api/orders/{id}/demo-pay` and says so in every order it touches
(`payment.provider = "demo"`).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Protocol

from checkout.records import Order


class IntentStatus(enum.StrEnum):
    REQUIRES_PAYMENT = "requires_payment_method"  # also requires_confirmation / requires_action
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"  # authorized: the money is held
    SUCCEEDED = "succeeded"  # captured
    CANCELED = "canceled"


@dataclass(frozen=True, slots=True)
class Intent:
    id: str
    status: IntentStatus
    client_secret: str | None
    order_id: str | None = None


class PaymentProvider(Protocol):
    name: str
    publishable_key: str | None

    async def create_intent(self, order: Order) -> Intent: ...

    async def retrieve(self, intent_id: str) -> Intent: ...

    async def capture(self, intent_id: str, order_id: str) -> Intent: ...

    async def cancel(self, intent_id: str, order_id: str) -> Intent: ...

    async def refund(self, intent_id: str, order_id: str) -> None: ...

    async def close(self) -> None: ...


class DemoProvider:
    """Approves every payment made through the demo-pay endpoint; moves no money.

    Stateless: an intent's id is derived from its order, and its status comes from the
    order itself, so several processes agree without sharing anything.
    """

    name = "demo"
    publishable_key: str | None = None

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(16)

    async def create_intent(self, order: Order) -> Intent:
        signature = hmac.new(self._secret, order.id.encode(), hashlib.sha256).hexdigest()[:24]
        intent_id = f"demo_pi_{order.id}"
        return Intent(intent_id, IntentStatus.REQUIRES_PAYMENT, f"{intent_id}_secret_{signature}", order.id)

    async def retrieve(self, intent_id: str) -> Intent:
        # The demo buyer pays through demo-pay, which settles the order directly; until then
        # the intent waits, and the order expires like any unpaid one.
        return Intent(intent_id, IntentStatus.REQUIRES_PAYMENT, None)

    async def capture(self, intent_id: str, order_id: str) -> Intent:
        return Intent(intent_id, IntentStatus.SUCCEEDED, None, order_id)

    async def cancel(self, intent_id: str, order_id: str) -> Intent:
        return Intent(intent_id, IntentStatus.CANCELED, None, order_id)

    async def refund(self, intent_id: str, order_id: str) -> None:
        return None

    async def close(self) -> None:
        return None
