"""Stripe payments end to end: the official SDK against localstripe on 127.0.0.1.

localstripe ignores Idempotency-Key, so the suite puts a small idempotency layer in front
of it (as Stripe itself behaves); its webhooks are real signed deliveries to our server,
and the suite signs its own events for the duplicate, out-of-order, stale and forged ones.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import stripe
from aiohttp import web
from aiohttp.test_utils import TestServer

from checkout.app import SHOP
from config.settings import Settings
from server.app import create_app
from tests.conftest import ADMIN_TOKEN, REDIS_URL, Api, MakeClient, free_port

SECRET_KEY = "sk_test_livecart"
WEBHOOK_SECRET = "whsec_livecart_test"


@pytest.fixture(scope="module")
def localstripe() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "localstripe_server.py"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                import urllib.request

                urllib.request.urlopen(f"{url}/js.stripe.com/v3/", timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "localstripe did not start"
                assert proc.poll() is None, "localstripe exited"
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
async def stripe_api(localstripe: str) -> AsyncIterator[str]:
    """localstripe behind an idempotency layer (replays the first answer to a key), flushed."""
    async with aiohttp.ClientSession() as http:
        async with http.delete(f"{localstripe}/_config/data") as r:
            assert r.status == 200  # it slows down as its store grows
        seen: dict[tuple[str, str, str], tuple[int, bytes]] = {}

        async def forward(request: web.Request) -> web.Response:
            key = request.headers.get("Idempotency-Key")
            memo = (request.method, request.path, key) if key else None
            if memo in seen:
                status, body = seen[memo]
                return web.Response(status=status, body=body, content_type="application/json")
            headers = {
                k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")
            }
            async with http.request(
                request.method, f"{localstripe}{request.path_qs}", data=await request.read(), headers=headers
            ) as upstream:
                body = await upstream.read()
                status = upstream.status
            if memo is not None and status < 500:
                seen[memo] = (status, body)
            return web.Response(status=status, body=body, content_type="application/json")

        proxy = web.Application()
        proxy.router.add_route("*", "/{tail:.*}", forward)
        server = TestServer(proxy, host="127.0.0.1")
        await server.start_server()
        try:
            yield str(server.make_url("")).rstrip("/")
        finally:
            await server.close()


@pytest.fixture(params=["sqlite+memory", "postgresql+redis"])
def stripe_settings(request: pytest.FixtureRequest, tmp_path: Path, stripe_api: str) -> Settings:
    database, stock = request.param.split("+")
    url = (
        f"sqlite:///{tmp_path / 'stripe.db'}"
        if database == "sqlite"
        else request.getfixturevalue("pg_schema_url")
    )
    return Settings(
        data_dir=tmp_path,
        database_url=url,
        redis_url=REDIS_URL if stock == "redis" else None,
        admin_token=ADMIN_TOKEN,
        stripe_secret_key=SECRET_KEY,
        stripe_publishable_key="pk_test_livecart",
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=stripe_api,
        reservation_ttl_s=600,
    )


@pytest.fixture
async def shop(aiohttp_client: MakeClient, stripe_settings: Settings, localstripe: str) -> Api:
    settings = stripe_settings
    api = Api(await aiohttp_client(create_app(settings)))
    hook = str(api.client.make_url("/api/webhooks/stripe"))
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{localstripe}/_config/webhooks/livecart", data={"url": hook, "secret": WEBHOOK_SECRET}
        ) as r:
            assert r.status == 200
    return api


@pytest.fixture
async def buyer(stripe_api: str) -> AsyncIterator[stripe.StripeClient]:
    """What Stripe.js does in the buyer's browser, with the same test account."""
    http = stripe.AIOHTTPClient()
    yield stripe.StripeClient(SECRET_KEY, base_addresses={"api": stripe_api}, http_client=http)
    await http.close_async()  # type: ignore[no-untyped-call]


async def _authorized(api: Api, intent_id: str) -> None:
    """Stripe says `amount_capturable_updated` when a manual-capture payment is authorized;
    localstripe says nothing then, so the suite sends that event, signed as Stripe signs."""
    payload, signature = _signed(_event("payment_intent.amount_capturable_updated", intent_id))
    response = await api.client.post(
        "/api/webhooks/stripe",
        data=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": signature},
    )
    assert response.status == 200


async def tell_authorized(http: aiohttp.ClientSession, base: str, intent_id: str) -> None:
    """`_authorized` for a server running as its own process at `base`."""
    payload, signature = _signed(_event("payment_intent.amount_capturable_updated", intent_id))
    async with http.post(
        f"{base}/api/webhooks/stripe",
        data=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": signature},
    ) as response:
        assert response.status == 200


async def _pay_in_browser(client: stripe.StripeClient, intent_id: str) -> str:
    method = await client.v1.payment_methods.create_async(
        params={
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"},
        }
    )
    await client.v1.payment_intents.update_async(intent_id, params={"payment_method": method.id})
    confirmed = await client.v1.payment_intents.confirm_async(intent_id)
    return str(confirmed.status)


async def _order_status(
    api: Api, order: dict[str, Any], viewer: dict[str, Any], want: str, timeout: float = 10
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        _, fetched = await api.call("GET", f"/api/orders/{order['id']}", viewer["token"], expect=200)
        if fetched["status"] == want or time.monotonic() > deadline:
            return dict(fetched)
        await asyncio.sleep(0.1)


async def _show_and_order(
    api: Api, quantity: int = 2
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    brand = await api.account("brands")
    host = await api.account("hosts")
    product = await api.product(brand, price=2900, stock=10)
    stream = await api.stream(host, [product["id"]])
    body = {"product_id": product["id"], "price": 990, "quantity": quantity, "duration_s": 120}
    _, sale = await api.call("POST", f"/api/streams/{stream['id']}/sales", host["token"], body, expect=201)
    viewer = await api.account("viewers", "Mia")
    _, order = await api.call(
        "POST",
        "/api/orders",
        viewer["token"],
        {"stream_id": stream["id"], "product_id": product["id"], "quantity": 1},
        headers={"Idempotency-Key": "tap"},
        expect=201,
    )
    return viewer, order, sale, stream


def _signed(event: dict[str, Any], secret: str = WEBHOOK_SECRET, at: int | None = None) -> tuple[bytes, str]:
    payload = json.dumps(event).encode()
    stamp = int(time.time()) if at is None else at
    signature = hmac.new(secret.encode(), b"%d.%s" % (stamp, payload), hashlib.sha256).hexdigest()
    return payload, f"t={stamp},v1={signature}"


def _event(kind: str, intent_id: str) -> dict[str, Any]:
    return {
        "id": "evt_" + secrets.token_hex(8),
        "object": "event",
        "type": kind,
        "created": int(time.time()),
        "data": {"object": {"id": intent_id, "object": "payment_intent"}},
    }


async def test_paid_through_stripe_by_webhook(shop: Api, buyer: stripe.StripeClient) -> None:
    viewer, order, sale, _ = await _show_and_order(shop)
    payment = order["payment"]
    assert payment["provider"] == "stripe" and payment["intent_id"].startswith("pi_")
    assert (
        payment["client_secret"].startswith(payment["intent_id"])
        and payment["publishable_key"] == "pk_test_livecart"
    )
    client = buyer
    intent = await client.v1.payment_intents.retrieve_async(payment["intent_id"])
    assert (intent.amount, intent.currency, intent.capture_method) == (990, "usd", "manual")
    assert intent.metadata["order_id"] == order["id"]
    assert await _pay_in_browser(client, payment["intent_id"]) == "requires_capture"  # held, not taken
    await _authorized(shop, payment["intent_id"])
    paid = await _order_status(shop, order, viewer, "paid")
    assert paid["status"] == "paid"
    captured = await client.v1.payment_intents.retrieve_async(payment["intent_id"])
    assert captured.status == "succeeded"  # taken once the units were committed
    _, refunded = await shop.call("POST", f"/api/orders/{order['id']}/refund", ADMIN_TOKEN, expect=200)
    assert refunded["status"] == "refunded"
    latest = captured.latest_charge
    assert latest is not None
    charge = await client.v1.charges.retrieve_async(latest if isinstance(latest, str) else latest.id)
    assert charge.amount_refunded == 990  # the money went back
    counts = await shop.client.app[SHOP].stock.counts(sale["id"])
    assert (counts.sold, counts.held) == (1, 0)


async def test_the_same_order_never_opens_two_intents(shop: Api) -> None:
    _, order, _, _ = await _show_and_order(shop)
    checkout = shop.client.app[SHOP]
    stored = await checkout.orders.store.get_order(order["id"])
    assert stored is not None
    again = await checkout.provider.create_intent(stored)  # a retry after a timeout
    assert again.id == order["payment"]["intent_id"]


async def test_a_lost_hold_is_never_charged(shop: Api, buyer: stripe.StripeClient) -> None:
    viewer, order, sale, _ = await _show_and_order(shop)
    checkout = shop.client.app[SHOP]
    await checkout.stock.release(sale["id"], order["id"])  # as if the hold had expired meanwhile
    client = buyer
    await _pay_in_browser(client, order["payment"]["intent_id"])
    await _authorized(shop, order["payment"]["intent_id"])
    lost = await _order_status(shop, order, viewer, "expired")
    assert lost["status"] == "expired"
    intent = await client.v1.payment_intents.retrieve_async(order["payment"]["intent_id"])
    assert intent.status == "canceled"  # the authorization was released: nobody paid


async def test_reconciler_finishes_what_a_lost_webhook_left(
    shop: Api, buyer: stripe.StripeClient, localstripe: str
) -> None:
    viewer, order, _, _ = await _show_and_order(shop)
    async with aiohttp.ClientSession() as http:  # deliveries go nowhere now
        await http.post(
            f"{localstripe}/_config/webhooks/livecart",
            data={"url": "http://127.0.0.1:9/", "secret": WEBHOOK_SECRET},
        )
    await _pay_in_browser(buyer, order["payment"]["intent_id"])
    await asyncio.sleep(0.5)
    _, waiting = await shop.call("GET", f"/api/orders/{order['id']}", viewer["token"], expect=200)
    assert waiting["status"] == "pending_payment"
    assert await shop.client.app[SHOP].upkeep.reconcile() == 1
    _, paid = await shop.call("GET", f"/api/orders/{order['id']}", viewer["token"], expect=200)
    assert paid["status"] == "paid"


async def test_forged_stale_unknown_duplicate_and_late_events(
    shop: Api, buyer: stripe.StripeClient, localstripe: str
) -> None:
    viewer, order, _, _ = await _show_and_order(shop)
    intent_id = order["payment"]["intent_id"]
    async with aiohttp.ClientSession() as http:  # only our own deliveries from here on
        await http.post(
            f"{localstripe}/_config/webhooks/livecart",
            data={"url": "http://127.0.0.1:9/", "secret": WEBHOOK_SECRET},
        )

    async def deliver(payload: bytes, signature: str | None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["Stripe-Signature"] = signature
        response = await shop.client.post("/api/webhooks/stripe", data=payload, headers=headers)
        return response.status, await response.json()

    succeeded = _event("payment_intent.succeeded", intent_id)
    for payload, signature in (
        _signed(succeeded, secret="whsec_someone_else"),  # forged
        _signed(succeeded, at=int(time.time()) - 3600),  # stale: a replay
        (json.dumps(succeeded).encode(), None),  # unsigned
        (b"{not json", _signed(succeeded)[1]),
    ):
        status, body = await deliver(payload, signature)
        assert status == 400 and body["error"]["code"] in ("invalid_signature", "malformed_json")
    status, body = await deliver(*_signed(_event("customer.created", intent_id)))
    assert status == 200 and body["handled"] is False  # not ours to act on
    # a genuine-looking success before the buyer paid: the intent says otherwise, nothing moves
    status, body = await deliver(*_signed(succeeded))
    assert status == 200 and body["handled"] is True
    await asyncio.sleep(0.5)
    _, still = await shop.call("GET", f"/api/orders/{order['id']}", viewer["token"], expect=200)
    assert still["status"] == "pending_payment"
    # the buyer pays; the same event id again is a duplicate, a fresh one settles it
    await _pay_in_browser(buyer, intent_id)
    status, body = await deliver(*_signed(succeeded))
    assert body.get("duplicate") is True
    status, body = await deliver(*_signed(_event("payment_intent.amount_capturable_updated", intent_id)))
    assert status == 200 and body["handled"] is True
    assert (await _order_status(shop, order, viewer, "paid"))["status"] == "paid"
    # a failure notice arriving late does not undo the payment: the intent is asked again
    status, _ = await deliver(*_signed(_event("payment_intent.payment_failed", intent_id)))
    assert status == 200
    await asyncio.sleep(0.5)
    _, final = await shop.call("GET", f"/api/orders/{order['id']}", viewer["token"], expect=200)
    assert final["status"] == "paid"


async def test_a_signed_but_malformed_event_is_400_and_its_retry_is_processed(
    shop: Api, buyer: stripe.StripeClient
) -> None:
    viewer, order, _, _ = await _show_and_order(shop)
    intent_id = order["payment"]["intent_id"]
    await _pay_in_browser(buyer, intent_id)
    good = _event("payment_intent.amount_capturable_updated", intent_id)
    broken = {key: value for key, value in good.items() if key != "data"}  # no payment intent
    headers = {"Content-Type": "application/json"}
    payload, signature = _signed(broken)
    response = await shop.client.post(
        "/api/webhooks/stripe", data=payload, headers=headers | {"Stripe-Signature": signature}
    )
    assert response.status == 400 and (await response.json())["error"]["code"] == "invalid_event"
    # Stripe retries the same event id, now whole: it is processed, not dropped as a duplicate
    payload, signature = _signed(good)
    response = await shop.client.post(
        "/api/webhooks/stripe", data=payload, headers=headers | {"Stripe-Signature": signature}
    )
    assert response.status == 200 and (await response.json())["handled"] is True
    assert (await _order_status(shop, order, viewer, "paid"))["status"] == "paid"


async def test_webhook_without_stripe_is_404(api: Api) -> None:
    status, body = await api.call("POST", "/api/webhooks/stripe", json={})
    assert status == 404 and body["error"]["code"] == "stripe_not_configured"


async def _all_intents(http: aiohttp.ClientSession, base: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(1000):  # bounded pagination
        query = "limit=100" + (f"&starting_after={after}" if after else "")
        async with http.get(
            f"{base}/v1/payment_intents?{query}", headers={"Authorization": f"Bearer {SECRET_KEY}"}
        ) as r:
            page = await r.json()
        found += page["data"]
        if not page.get("has_more") or not page["data"]:
            return found
        after = page["data"][-1]["id"]
    raise AssertionError("too many pages")


async def test_a_node_killed_mid_rush_leaves_no_payment_without_its_order(
    tmp_path: Path, stripe_api: str, localstripe: str, pg_schema_url: str, buyer: stripe.StripeClient
) -> None:
    """Two processes, Stripe, SIGKILL in the middle of a rush: every PaymentIntent that
    succeeded has a paid order, no unit is sold twice, and the unpaid ones come back."""
    from tests.procs import Progress, kill_mid_way, shop_cluster
    from tests.scenario import flash_sale

    units, buyers = 40, 240
    stripe_env = {
        "LIVECART_STRIPE_SECRET_KEY": SECRET_KEY,
        "LIVECART_STRIPE_PUBLISHABLE_KEY": "pk_test_livecart",
        "LIVECART_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "LIVECART_STRIPE_API_BASE": stripe_api,
    }
    with shop_cluster(tmp_path, pg_schema_url, ADMIN_TOKEN, reservation_ttl_s=6, env=stripe_env) as nodes:
        one, two = nodes
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            await http.post(
                f"{localstripe}/_config/webhooks/livecart",
                data={"url": f"{one.url}/api/webhooks/stripe", "secret": WEBHOOK_SECRET},
            )

            async def call(method: str, url: str, token: str | None = None, **kw: Any) -> tuple[int, Any]:
                headers = dict(kw.pop("headers", {}))
                if token:
                    headers["Authorization"] = f"Bearer {token}"
                try:
                    async with http.request(method, url, headers=headers, **kw) as r:
                        return r.status, await r.json()
                except (TimeoutError, aiohttp.ClientError):
                    return 0, None

            show = await flash_sale(http, one.url, ADMIN_TOKEN, units=units, buyers=buyers, stock=100)
            stream, product, viewers = show.stream, show.product, show.viewers
            body = {"stream_id": stream["id"], "product_id": product["id"], "quantity": 1}
            progress = Progress()
            rush = asyncio.gather(
                *(
                    progress.track(
                        call(
                            "POST",
                            f"{(one, two)[i % 2].url}/api/orders",
                            v["token"],
                            json=body,
                            headers={"Idempotency-Key": f"k{i}"},
                        )
                    )
                    for i, v in enumerate(viewers)
                )
            )
            # at the first answer from either node: node two still has taps in flight then, however
            # fast it is (its answers come in bursts, so a later mark could miss them all)
            await kill_mid_way(two, progress, after=1)
            results = await rush
            two.kill()
            two.start(tmp_path)
            won = [(viewers[i], o) for i, (status, o) in enumerate(results) if status == 201]
            assert any(status == 0 for status, _ in results), "the kill came too late to test anything"
            # the killed node may have held every unit and died before answering (then no winner,
            # and still no money may be left held); the live node's buyers bought or heard sold_out
            assert len(won) <= units
            live = results[0::2]
            assert all(
                status == 201 or (o or {}).get("error", {}).get("code") == "sold_out" for status, o in live
            )
            # every winner pays in the browser; Stripe then tells node one the money is held
            for _, order in won:
                await _pay_in_browser(buyer, order["payment"]["intent_id"])
                await tell_authorized(http, one.url, order["payment"]["intent_id"])
            deadline = time.monotonic() + 30
            while True:  # settled, and the unpaid holds (buyers who never heard back) expired
                statuses = [
                    (await call("GET", f"{one.url}/api/orders/{o['id']}", headers=admin))[1]["status"]
                    for _, o in won
                ]
                _, shown = await call("GET", f"{one.url}/api/streams/{stream['id']}")
                # a sale whose every unit got paid has ended itself: nothing left on it
                remaining = shown["sale"]["remaining"] if shown["sale"] else 0
                if (set(statuses) <= {"paid"} and remaining == units - len(won)) or (
                    time.monotonic() > deadline
                ):
                    break
                await asyncio.sleep(0.5)
            assert set(statuses) <= {"paid"}  # every winner paid (there may be none)
            assert remaining == units - len(won)  # sold + on sale again = all
            assert (shown["sale"] is None) == (len(won) == units)
            intents = await _all_intents(http, localstripe)
            succeeded = [i for i in intents if i["status"] == "succeeded"]
            assert len(succeeded) == len(won)
            for intent in succeeded:  # every captured payment has its paid order
                status, order = await call(
                    "GET", f"{one.url}/api/orders/{intent['metadata']['order_id']}", headers=admin
                )
                assert status == 200 and order["status"] == "paid" and order["amount"] == intent["amount"]
            assert not [i for i in intents if i["status"] == "requires_capture"]  # no money left held
