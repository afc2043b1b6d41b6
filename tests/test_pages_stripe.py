"""The watch page paying through Stripe: the Payment Element's script loaded only when an order
is paid through Stripe, the order followed until Stripe's webhook settles it.

Stripe.js cannot load here (no internet) and localstripe's own fake Stripe.js knows only the
Card Element, so the one test double in the page suites stands in for Stripe.js: it records what
the page gave it (publishable key, client secret) and lets the page confirm. The buyer's card is
then confirmed the way Stripe.js would, with the official SDK against localstripe, and Stripe's
webhooks are localstripe's real signed deliveries (plus the authorization event localstripe does
not send, signed as Stripe signs it, as in tests/test_stripe.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import stripe

from tests.browser import Pages, browser, pages, until
from tests.procs import ServerProcess
from tests.test_pages import Show, join_as, page_server, show
from tests.test_stripe import SECRET_KEY, WEBHOOK_SECRET, _pay_in_browser, localstripe, tell_authorized

__all__ = ["browser", "localstripe", "pages", "show"]  # the fixtures

pytestmark = pytest.mark.timeout(180)

STRIPE_JS = "https://js.stripe.com/v3/"
FAKE_STRIPE_JS = """
window.Stripe = (key) => ({
  elements: ({ clientSecret }) => ({
    create: (type) => ({
      mount: (where) => {
        const form = document.createElement("div");
        form.className = "fake-stripe-element";
        form.textContent = "Card details (Stripe's " + type + " element)";
        (typeof where === "string" ? document.querySelector(where) : where).append(form);
        window.stripeDouble = { key, clientSecret, type, confirmed: false };
      },
    }),
  }),
  confirmPayment: async ({ redirect }) => {
    window.stripeDouble.confirmed = redirect;
    return {};
  },
});
"""


@pytest.fixture
def server(tmp_path: Path, localstripe: str) -> Iterator[ServerProcess]:
    with page_server(
        tmp_path,
        LIVECART_STRIPE_SECRET_KEY=SECRET_KEY,
        LIVECART_STRIPE_PUBLISHABLE_KEY="pk_test_livecart",
        LIVECART_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        LIVECART_STRIPE_API_BASE=localstripe,
    ) as node:
        yield node


async def test_a_viewer_pays_through_stripe_and_sees_the_order_confirmed(
    pages: Pages, show: Show, localstripe: str
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{localstripe}/_config/webhooks/livecart",
            data={"url": f"{show.base}/api/webhooks/stripe", "secret": WEBHOOK_SECRET},
        ) as response:
            assert response.status == 200
    await show.call(
        "POST",
        f"/api/streams/{show.stream['id']}/pin",
        show.host["token"],
        {"product_id": show.products[0]["id"]},
    )
    pages.stubs[STRIPE_JS] = FAKE_STRIPE_JS
    watch = await pages.open(show.watch, phone=True, label="watch")
    await until(watch, "document.querySelector('#buy')", what="the pinned card")
    assert await watch.evaluate("typeof window.Stripe") == "undefined", "Stripe.js loads only to pay"

    await watch.click("#buy")
    await join_as(watch, "Mia")
    await watch.click("#place")
    await until(watch, "document.querySelector('.fake-stripe-element')", what="Stripe's element mounted")
    order = await watch.evaluate("window.e2e.page.buy.state.order")
    assert order["payment"]["provider"] == "stripe"
    double = await watch.evaluate("window.stripeDouble")
    assert double == {
        "key": "pk_test_livecart",
        "clientSecret": order["payment"]["client_secret"],
        "type": "payment",
        "confirmed": False,
    }
    assert "Demo payment" not in await watch.inner_text("#sheet")
    assert await watch.inner_text("#confirm-pay") == "Pay $29.00"
    await pages.shot(watch, "watch-stripe-pay-phone")

    await watch.click("#confirm-pay")
    await until(watch, "document.querySelector('#order-state[data-status=pending_payment]')", what="waiting")
    assert await watch.evaluate("window.stripeDouble.confirmed") == "if_required"

    # the card, as Stripe.js would confirm it; Stripe's webhooks settle the order
    client = stripe.AIOHTTPClient()
    try:
        buyer = stripe.StripeClient(SECRET_KEY, base_addresses={"api": localstripe}, http_client=client)
        assert await _pay_in_browser(buyer, order["payment"]["intent_id"]) == "requires_capture"
    finally:
        await client.close_async()  # type: ignore[no-untyped-call]
    async with aiohttp.ClientSession() as http:
        await tell_authorized(http, show.base, order["payment"]["intent_id"])
    await until(watch, "document.querySelector('#order-state[data-status=paid]')", 30_000, what="paid")
    assert "Order confirmed" in await watch.inner_text("#order-state")
    status, paid = await show.call(
        "GET", f"/api/orders/{order['id']}", await watch.evaluate("window.e2e.page.me.token")
    )
    assert status == 200 and paid["status"] == "paid"
    await pages.check(watch)
