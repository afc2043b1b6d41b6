"""The shoppable replay's sales: once a show is over its lineup can still be bought from the replay,
at the regular price, and what the replay sells (and how often it is watched) is counted apart
from the show's own figures, which stay its post-show report. On SQLite with in-process stock
and on PostgreSQL with Redis."""

from __future__ import annotations

from typing import Any

from tests.conftest import ADMIN_TOKEN, Api
from tests.shopping import buy, paid, start_sale
from tests.test_sales_reports import _csv


async def _show(shop: Api) -> dict[str, Any]:
    silk, canvas = await shop.account("brands", "Silk & Co"), await shop.account("brands", "Canvas Ltd")
    host = await shop.account("hosts", "Lin")
    scarf = await shop.product(silk, title="Silk scarf", price=2900, stock=20)
    tote = await shop.product(canvas, title="Canvas tote", price=3900, stock=8)
    stream = await shop.stream(host, [scarf["id"], tote["id"]])
    return {"silk": silk, "canvas": canvas, "host": host, "scarf": scarf, "tote": tote, "stream": stream}


async def test_an_ended_show_sells_from_its_replay_at_the_regular_price(shop: Api) -> None:
    s = await _show(shop)
    stream, host, scarf, tote = s["stream"], s["host"], s["scarf"], s["tote"]
    ann, bo = await shop.account("viewers", "Ann"), await shop.account("viewers", "Bo")
    sale = await start_sale(shop, host, stream, scarf, price=990, quantity=3)
    await paid(shop, ann, stream, scarf, 1)  # at the sale's price, in the show
    path = f"/api/streams/{stream['id']}/sales"
    views = f"/api/streams/{stream['id']}/replay/views"
    status, error = await shop.call("POST", views)
    assert status == 409 and error["error"]["code"] == "stream_not_ended"  # no replay while live
    await shop.call("POST", f"/api/streams/{stream['id']}/end", host["token"], expect=200)
    _, report = await shop.call("GET", path, host["token"], expect=200)
    assert (report["orders"], report["gmv"]) == (1, 990)
    assert report["replay"] == {
        "views": 0,
        "gmv": 0,
        "orders": 0,
        "units": 0,
        "buyers": 0,
        "conversion": 0.0,
        "products": [],
    }

    # the sale is over with the show: naming it is refused and holds nothing
    status, error = await buy(shop, bo, stream, scarf, sale_id=sale["id"])
    assert status == 409 and error["error"]["code"] == "sale_ended"
    status, order = await buy(shop, bo, stream, scarf, 2)
    assert status == 201, order
    assert (order["channel"], order["sale_id"], order["unit_price"], order["amount"]) == (
        "replay",
        None,
        2900,
        5800,
    )
    await shop.call("POST", f"/api/orders/{order['id']}/demo-pay", bo["token"], expect=200)
    refunded = await paid(shop, ann, stream, tote, 1)
    await paid(shop, bo, stream, tote, 1)
    await shop.call("POST", f"/api/orders/{refunded}/refund", ADMIN_TOKEN, expect=200)
    for _ in range(4):
        await shop.call("POST", views, expect=204)

    _, after = await shop.call("GET", path, host["token"], expect=200)
    show = {k: v for k, v in after.items() if k != "replay"}
    assert show == {k: v for k, v in report.items() if k != "replay"}  # the show's report stands
    replay = after["replay"]
    assert (replay["views"], replay["orders"], replay["units"], replay["buyers"]) == (4, 2, 3, 1)
    assert replay["gmv"] == 2 * 2900 + 3900 and replay["conversion"] == 0.25
    assert {p["product_id"]: p["units"] for p in replay["products"]} == {scarf["id"]: 2, tote["id"]: 1}
    _, silk = await shop.call("GET", path, s["silk"]["token"], expect=200)  # a brand: its share only
    assert (silk["replay"]["orders"], silk["replay"]["gmv"], silk["replay"]["views"]) == (1, 5800, 4)
    assert [p["product_id"] for p in silk["replay"]["products"]] == [scarf["id"]]
    _, canvas = await shop.call("GET", path, s["canvas"]["token"], expect=200)
    assert (canvas["replay"]["orders"], canvas["replay"]["gmv"], canvas["replay"]["buyers"]) == (1, 3900, 1)
    assert scarf["id"] not in str(canvas)

    rows = await _csv(shop, stream, host["token"])
    assert [(r["amount"], r["status"], r["channel"]) for r in rows] == [
        ("990", "paid", "live"),
        ("5800", "paid", "replay"),
        ("3900", "refunded", "replay"),
        ("3900", "paid", "replay"),
    ]
    _, stocked = await shop.call("GET", f"/api/products/{scarf['id']}", expect=200)
    # the sale's 3 units left the stock when it started (its unsold ones come back when it
    # settles); the replay's 2 come from the product's own stock
    assert stocked["stock"] == 20 - 3 - 2


async def test_replay_buys_and_views_that_cannot_be_change_nothing(shop: Api) -> None:
    s = await _show(shop)
    stream, host, scarf = s["stream"], s["host"], s["scarf"]
    elsewhere = await shop.product(s["silk"], title="Not in this show")
    ann = await shop.account("viewers", "Ann")
    await shop.call("POST", f"/api/streams/{stream['id']}/end", host["token"], expect=200)
    status, error = await buy(shop, ann, stream, elsewhere)
    assert status == 422 and error["error"]["code"] == "product_not_in_stream"
    status, error = await buy(shop, ann, stream, s["tote"], 9)  # 8 in stock
    assert status == 409 and error["error"]["code"] == "sold_out"
    # a brand that took its consent back stops its products selling in that host's replays
    await shop.call("DELETE", f"/api/brands/me/hosts/{host['id']}", s["silk"]["token"], expect=204)
    status, error = await buy(shop, ann, stream, scarf)
    assert status == 403 and error["error"]["code"] == "not_granted"
    status, error = await shop.call("POST", "/api/streams/str_nope/replay/views")
    assert status == 404 and error["error"]["code"] == "stream_not_found"
    _, stocked = await shop.call("GET", f"/api/products/{scarf['id']}", expect=200)
    assert stocked["stock"] == 20
    _, figures = await shop.call("GET", f"/api/streams/{stream['id']}/sales", host["token"], expect=200)
    assert figures["replay"]["orders"] == 0 and figures["replay"]["views"] == 0
