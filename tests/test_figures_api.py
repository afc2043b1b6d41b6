"""`GET /api/streams/{id}/sales`: the show's figures for its host, each brand's share for that
brand, nothing for anyone else — on SQLite with in-process stock and on PostgreSQL with Redis."""

from __future__ import annotations

import secrets
from typing import Any

from tests.conftest import ADMIN_TOKEN, Api
from tests.shopping import buy, start_sale


async def _paid(
    api: Api, viewer: dict[str, Any], stream: dict[str, Any], product: dict[str, Any], qty: int
) -> str:
    status, order = await buy(api, viewer, stream, product, qty, key=secrets.token_hex(8))
    assert status == 201, order
    await api.call("POST", f"/api/orders/{order['id']}/demo-pay", viewer["token"], expect=200)
    return str(order["id"])


async def test_the_host_sees_the_show_and_each_brand_its_own_share(shop: Api) -> None:
    silk, canvas = await shop.account("brands", "Silk & Co"), await shop.account("brands", "Canvas Ltd")
    host = await shop.account("hosts", "Lin")
    scarf = await shop.product(silk, title="Silk scarf", price=2900, stock=20)
    tote = await shop.product(canvas, title="Canvas tote", price=3900, stock=8)
    stream = await shop.stream(host, [scarf["id"], tote["id"]])
    ann, bo = await shop.account("viewers", "Ann"), await shop.account("viewers", "Bo")
    await _paid(shop, ann, stream, scarf, 2)
    await _paid(shop, bo, stream, scarf, 1)
    refunded = await _paid(shop, bo, stream, tote, 1)
    await _paid(shop, ann, stream, tote, 1)
    await shop.call("POST", f"/api/orders/{refunded}/refund", ADMIN_TOKEN, expect=200)
    await start_sale(shop, host, stream, tote, quantity=3)
    path = f"/api/streams/{stream['id']}/sales"

    _, whole = await shop.call("GET", path, host["token"], expect=200)
    assert (whole["orders"], whole["units"], whole["buyers"]) == (3, 4, 2)
    assert whole["gmv"] == 3 * 2900 + 3900 and whole["currency"] == "USD"
    rows = {p["title"]: p for p in whole["products"]}
    assert (rows["Silk scarf"]["units"], rows["Silk scarf"]["gmv"], rows["Silk scarf"]["remaining"]) == (
        3,
        8700,
        17,
    )
    assert (rows["Canvas tote"]["orders"], rows["Canvas tote"]["remaining"]) == (
        1,
        3,
    )  # the running sale's units
    assert (
        sum(m["orders"] for m in whole["timeline"]) == 3 and sum(m["gmv"] for m in whole["timeline"]) == 12600
    )
    assert whole["viewers_unique"] >= 0 and whole["conversion"] == (
        round(2 / whole["viewers_unique"], 4) if whole["viewers_unique"] else 0.0
    )
    _, admin = await shop.call("GET", path, ADMIN_TOKEN, expect=200)
    assert admin == whole

    _, mine = await shop.call("GET", path, silk["token"], expect=200)
    assert (mine["orders"], mine["units"], mine["buyers"], mine["gmv"]) == (2, 3, 2, 8700)
    assert [p["title"] for p in mine["products"]] == ["Silk scarf"]
    _, theirs = await shop.call("GET", path, canvas["token"], expect=200)
    assert (theirs["orders"], theirs["buyers"], theirs["gmv"]) == (1, 1, 3900)
    assert "Silk scarf" not in str(theirs)


async def test_no_one_else_sees_the_figures(shop: Api) -> None:
    brand = await shop.account("brands", "Silk & Co")
    host = await shop.account("hosts", "Lin")
    item = await shop.product(brand)
    stream = await shop.stream(host, [item["id"]])
    path = f"/api/streams/{stream['id']}/sales"
    stranger_brand = await shop.account("brands", "Other")
    other_host = await shop.account("hosts", "Cy")
    viewer = await shop.account("viewers", "Vi")
    for who in (viewer, other_host, stranger_brand):
        _, refused = await shop.call("GET", path, who["token"], expect=403)
        assert refused["error"]["code"] == "forbidden"
    _, refused = await shop.call("GET", path, expect=401)
    assert refused["error"]["code"] == "unauthorized"
    _, missing = await shop.call("GET", "/api/streams/str_nope/sales", host["token"], expect=404)
    assert missing["error"]["code"] == "stream_not_found"
