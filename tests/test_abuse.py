"""What a hostile or clumsy client cannot break: one bad buyer never fails the others, nobody
hoards the stock, and text no database can store is refused up front.

Runs on in-process stock + SQLite and on Redis stock + PostgreSQL (the `shop` fixture).
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import orjson

from tests.conftest import Api
from tests.shopping import buy, open_show, start_sale


async def _raw_post(api: Api, path: str, token: str, body: dict[str, Any], headers: bytes) -> tuple[int, Any]:
    """A POST written byte by byte, for header bytes an HTTP client would not send (e.g. \\xff)."""
    reader, writer = await asyncio.open_connection(api.client.host, api.client.port)
    payload = orjson.dumps(body)
    writer.write(
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: livecart.test\r\nConnection: close\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(payload)).encode() + b"\r\n" + headers + b"\r\n" + payload
    )
    try:
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, content = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), orjson.loads(content)


async def test_a_garbled_idempotency_key_fails_only_its_own_buyer(shop: Api) -> None:
    host, stream, product = await open_show(shop, stock=40)
    sale = await start_sale(shop, host, stream, product, quantity=30)
    viewers = [await shop.account("viewers", f"buyer {i}") for i in range(30)]
    body = {"stream_id": stream["id"], "product_id": product["id"], "quantity": 1, "sale_id": sale["id"]}

    async def tap(i: int, viewer: dict[str, Any]) -> tuple[int, Any]:
        if i % 10 == 3:  # three taps whose key carries a byte that is not UTF-8
            return await _raw_post(shop, "/api/orders", viewer["token"], body, b"Idempotency-Key: k\xff\r\n")
        return await buy(shop, viewer, stream, product, sale_id=sale["id"])

    answers = await asyncio.gather(*(tap(i, v) for i, v in enumerate(viewers)))

    refused = [answer for i, answer in enumerate(answers) if i % 10 == 3]
    served = [answer for i, answer in enumerate(answers) if i % 10 != 3]
    assert [status for status, _ in refused] == [422] * 3
    assert {error["error"]["code"] for _, error in refused} == {"invalid_idempotency_key"}
    assert [status for status, _ in served] == [201] * 27
    _, shown = await shop.call("GET", f"/api/streams/{stream['id']}", expect=200)
    assert shown["sale"]["remaining"] == 3  # the refused taps hold nothing


async def test_idempotency_keys_are_printable_ascii_within_the_cap(shop: Api) -> None:
    _, stream, product = await open_show(shop)
    viewer = await shop.account("viewers")
    for key in ("kÿ", "tab\there", "x" * 201, "emoji-😀"):
        status, error = await buy(shop, viewer, stream, product, key=key)
        assert (status, error["error"]["code"]) == (422, "invalid_idempotency_key"), key
    status, _ = await buy(shop, viewer, stream, product, key="plain key-1 " + secrets.token_hex(4))
    assert status == 201
    _, stocked = await shop.call("GET", f"/api/products/{product['id']}", expect=200)
    assert stocked["stock"] == 9  # only the good key held a unit


async def test_one_viewer_cannot_hoard_a_products_stock(shop: Api) -> None:
    _, stream, product = await open_show(shop, stock=200)
    hoarder, buyer = await shop.account("viewers", "Hoarder"), await shop.account("viewers", "Ann")
    # the hoarder: three unpaid orders of 99 each
    status, error = await buy(shop, hoarder, stream, product, 99)
    assert (status, error["error"]["code"]) == (422, "over_max_quantity")
    status, held = await buy(shop, hoarder, stream, product, 10)  # max_order_quantity, max_held_units
    assert status == 201
    status, error = await buy(shop, hoarder, stream, product, 1)
    assert (status, error["error"]["code"]) == (409, "hold_limit_reached")
    status, _ = await buy(shop, buyer, stream, product, 3)  # everyone else still buys
    assert status == 201
    _, stocked = await shop.call("GET", f"/api/products/{product['id']}", expect=200)
    assert stocked["stock"] == 200 - 10 - 3  # the refused tap took nothing
    # once paid, the units are no longer held: the hoarder may buy again
    await shop.call("POST", f"/api/orders/{held['id']}/demo-pay", hoarder["token"], expect=200)
    status, _ = await buy(shop, hoarder, stream, product, 10)
    assert status == 201


async def test_a_flash_sale_holds_at_most_max_held_units_per_viewer(shop: Api) -> None:
    host, stream, product = await open_show(shop, stock=200)
    sale = await start_sale(shop, host, stream, product, quantity=200, per_viewer_limit=99)
    hoarder, buyer = await shop.account("viewers", "Hoarder"), await shop.account("viewers", "Ann")
    for _ in range(2):
        status, _ = await buy(shop, hoarder, stream, product, 5, sale_id=sale["id"])
        assert status == 201
    status, error = await buy(shop, hoarder, stream, product, 1, sale_id=sale["id"])
    assert (status, error["error"]["code"]) == (409, "hold_limit_reached")
    status, order = await buy(shop, buyer, stream, product, 2, sale_id=sale["id"])
    assert status == 201 and order["expires_at"] < order["created_at"] + 181  # sale holds are short
    _, shown = await shop.call("GET", f"/api/streams/{stream['id']}", expect=200)
    assert shown["sale"]["remaining"] == 200 - 10 - 2


async def test_two_buys_of_one_viewer_at_once_cannot_both_pass_the_hold_limit(shop: Api) -> None:
    _, stream, product = await open_show(shop, stock=200)
    viewer = await shop.account("viewers")
    for _ in range(3):
        answers = await asyncio.gather(*(buy(shop, viewer, stream, product, 6) for _ in range(4)))
        assert sorted(status for status, _ in answers) == [201, 409, 409, 409]
        held = next(order for status, order in answers if status == 201)
        await shop.call("POST", f"/api/orders/{held['id']}/cancel", viewer["token"], expect=200)


async def test_text_no_database_can_store_is_refused_before_it_reaches_one(api: Api) -> None:
    brand, host = await api.account("brands"), await api.account("hosts")
    product = await api.product(brand)
    # a NUL or a byte that is not UTF-8 in a path names no record (PostgreSQL refused a NUL: 503)
    for path in ("/api/products/%00", "/api/products/a%00b", "/api/streams/%00", "/api/products/%FF%00"):
        status, error = await api.call("GET", path)
        assert (status, error["error"]["code"]) == (404, "not_found"), path
    status, error = await api.call("GET", "/api/products/%FF")  # decoded as a character: no such product
    assert (status, error["error"]["code"]) == (404, "product_not_found")
    status, _ = await api.call("GET", "/api/orders/%00", brand["token"])
    assert status == 404
    # and in any JSON text: 422 naming the field, nothing written
    bodies: list[tuple[str, str, str | None, dict[str, Any], str]] = [
        (
            "POST",
            "/api/products",
            brand["token"],
            {"title": "a\x00b", "price": 1, "currency": "USD", "stock": 1},
            "title",
        ),
        ("PATCH", f"/api/products/{product['id']}", brand["token"], {"description": "x\x00"}, "description"),
        ("POST", "/api/viewers", None, {"name": "\x00"}, "name"),
        ("POST", "/api/streams", host["token"], {"title": "show", "products": ["\x00"]}, "products.0"),
    ]
    for method, path, token, body, field in bodies:
        status, error = await api.call(method, path, token, body)
        assert (status, error["error"]["code"], error["error"]["field"]) == (422, "invalid_text", field), body
    lone = b'{"title": "\\ud800", "price": 1, "currency": "USD", "stock": 1}'
    response = await api.client.post(
        "/api/products",
        data=lone,
        headers={"Authorization": f"Bearer {brand['token']}", "Content-Type": "application/json"},
    )
    assert response.status == 422 and (await response.json())["error"]["code"] == "invalid_text"
    _, kept = await api.call("GET", f"/api/products/{product['id']}", expect=200)
    assert kept == product
    _, listed = await api.call("GET", "/api/streams", expect=200)
    assert listed["streams"] == []


async def test_a_garbled_token_is_an_invalid_token(shop: Api) -> None:
    _, stream, product = await open_show(shop)
    body = {"stream_id": stream["id"], "product_id": product["id"], "quantity": 1}
    status, error = await _raw_post(shop, "/api/orders", "lc_\xff", body, b"Idempotency-Key: k1\r\n")
    assert (status, error["error"]["code"]) == (401, "invalid_token")
