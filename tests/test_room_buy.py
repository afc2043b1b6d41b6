"""Buying over the room socket: a `buy` frame is `POST /api/orders` by another road — the same
rules, the same idempotency (one key is one order whichever road it took), the same order body,
answered to that socket alone. On SQLite + in-process stock and PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from tests.conftest import Api
from tests.shopping import start_sale
from tests.test_ws import Socket, connect


async def answer(sock: Socket, key: str, timeout: float = 5.0) -> dict[str, Any]:
    """The `order` or `error` event answering the buy sent with `key` (room events skipped)."""
    for _ in range(200):
        event = await sock.next(timeout)
        if event["type"] in ("order", "error") and event["data"].get("key") == key:
            return event
    raise AssertionError(f"no answer to the buy {key}")


async def tap(sock: Socket, key: str, **fields: Any) -> dict[str, Any]:
    await sock.send({"type": "buy", "key": key, **fields})
    return await answer(sock, key)


async def _show(shop: Api, stock: int = 10) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    brand, host = await shop.account("brands", "Silk & Co"), await shop.account("hosts", "Lin")
    scarf = await shop.product(brand, title="Silk scarf", price=2900, stock=stock)
    stream = await shop.stream(host, [scarf["id"]])
    return host, stream, scarf


async def test_a_buy_frame_places_the_order_the_http_route_would(shop: Api) -> None:
    _, stream, scarf = await _show(shop)
    ann = await shop.account("viewers", "Ann")
    sock, _ = await connect(shop, stream["id"], ann["token"])
    placed = await tap(sock, "tap-1", product_id=scarf["id"], quantity=2)
    assert placed["type"] == "order" and placed["data"]["created"] is True
    order = placed["data"]["order"]
    assert (order["status"], order["quantity"], order["amount"], order["stream_id"]) == (
        "pending_payment",
        2,
        5800,
        stream["id"],
    )
    _, stored = await shop.call("GET", f"/api/orders/{order['id']}", ann["token"], expect=200)
    assert stored == order

    # the same key again, by either road, is the same order
    again = await tap(sock, "tap-1", product_id=scarf["id"], quantity=2)
    assert (again["data"]["created"], again["data"]["order"]["id"]) == (False, order["id"])
    body = {"stream_id": stream["id"], "product_id": scarf["id"], "quantity": 2}
    _, same = await shop.call("POST", "/api/orders", ann["token"], body, headers={"Idempotency-Key": "tap-1"})
    assert same["id"] == order["id"]
    reused = await tap(sock, "tap-1", product_id=scarf["id"], quantity=3)
    assert (reused["type"], reused["data"]["code"]) == ("error", "idempotency_key_reused")

    # and it is paid like any other
    await shop.call("POST", f"/api/orders/{order['id']}/demo-pay", ann["token"], expect=200)
    _, product = await shop.call("GET", f"/api/products/{scarf['id']}", expect=200)
    assert product["stock"] == 8
    await sock.ws.close()


async def test_bad_buys_are_refused_with_their_key_and_change_nothing(shop: Api) -> None:
    host, stream, scarf = await _show(shop, stock=5)
    ann = await shop.account("viewers", "Ann")
    sock, _ = await connect(shop, stream["id"], ann["token"])
    for fields, code, field in (
        ({"product_id": scarf["id"], "quantity": 0}, "invalid_field", "quantity"),
        ({"product_id": scarf["id"], "quantity": "2"}, "invalid_field", "quantity"),
        ({"product_id": scarf["id"], "colour": "red"}, "invalid_field", "colour"),
        ({"quantity": 1}, "invalid_field", "product_id"),
        ({"product_id": "prd_nope"}, "unknown_product", "product_id"),
        ({"product_id": scarf["id"], "quantity": 6}, "sold_out", None),  # "only 5 left"
    ):
        key = secrets.token_hex(4)
        refused = await tap(sock, key, **fields)
        assert refused["type"] == "error" and refused["data"]["code"] == code, (fields, refused)
        assert refused["data"].get("field") == field, refused
    await sock.send({"type": "buy", "product_id": scarf["id"]})
    missing = await sock.next()
    assert (missing["type"], missing["data"]["code"]) == ("error", "idempotency_key_required")
    bad_key = await tap(sock, "\u00e9" * 3, product_id=scarf["id"])
    assert bad_key["data"]["code"] == "invalid_idempotency_key"
    _, product = await shop.call("GET", f"/api/products/{scarf['id']}", expect=200)
    assert product["stock"] == 5
    await sock.ws.close()

    # only a viewer buys: the host is refused, an anonymous socket only reads
    studio, _ = await connect(shop, stream["id"], host["token"])
    assert (await tap(studio, "h", product_id=scarf["id"]))["data"]["code"] == "forbidden"
    await studio.ws.close()
    anonymous, _ = await connect(shop, stream["id"])
    await anonymous.send({"type": "buy", "key": "a", "product_id": scarf["id"]})
    assert (await anonymous.next())["data"]["code"] == "read_only"
    await anonymous.ws.close()


async def test_a_rush_over_sockets_sells_exactly_the_sales_units(shop: Api) -> None:
    """40 viewers tap a 12-unit sale over their sockets, again and again: 12 orders, every other
    tap hears sold_out, and no socket is closed for it (sold out is not abuse)."""
    host, stream, scarf = await _show(shop, stock=50)
    await start_sale(shop, host, stream, scarf, quantity=12, per_viewer_limit=1)
    viewers = [await shop.account("viewers", f"V{i}") for i in range(40)]
    sockets = [(await connect(shop, stream["id"], v["token"]))[0] for v in viewers]

    async def keep_tapping(sock: Socket) -> list[dict[str, Any]]:
        return [await tap(sock, f"tap-{n}", product_id=scarf["id"]) for n in range(12)]

    answers = await asyncio.gather(*(keep_tapping(s) for s in sockets))
    orders = {a["data"]["order"]["id"] for taps in answers for a in taps if a["type"] == "order"}
    codes = {a["data"]["code"] for taps in answers for a in taps if a["type"] == "error"}
    assert len(orders) == 12 and codes <= {"sold_out", "limit_reached"}, codes
    _, shown = await shop.call("GET", f"/api/streams/{stream['id']}", expect=200)
    assert shown["sale"]["remaining"] == 0
    for sock in sockets:
        assert not sock.ws.closed
        await sock.ws.close()
