"""`GET /api/streams/{id}/sales`: the show's figures for its host, each brand's share for that
brand, nothing for anyone else — on SQLite with in-process stock and on PostgreSQL with Redis."""

from __future__ import annotations

import math
from typing import Any

from checkout.app import SHOP
from checkout.records import OrderStatus
from config.settings import Settings
from server.app import DATABASE
from tests.conftest import ADMIN_TOKEN, Api, MakeClient
from tests.shopping import buy, paid, start_sale
from tests.test_sales_feed import second_node
from tests.test_sales_figures import _scenarios


async def test_the_host_sees_the_show_and_each_brand_its_own_share(shop: Api) -> None:
    silk, canvas = await shop.account("brands", "Silk & Co"), await shop.account("brands", "Canvas Ltd")
    host = await shop.account("hosts", "Lin")
    scarf = await shop.product(silk, title="Silk scarf", price=2900, stock=20)
    tote = await shop.product(canvas, title="Canvas tote", price=3900, stock=8)
    stream = await shop.stream(host, [scarf["id"], tote["id"]])
    ann, bo = await shop.account("viewers", "Ann"), await shop.account("viewers", "Bo")
    await paid(shop, ann, stream, scarf, 2)
    await paid(shop, bo, stream, scarf, 1)
    refunded = await paid(shop, bo, stream, tote, 1)
    await paid(shop, ann, stream, tote, 1)
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
    # nobody joined the room: the two buyers are its only viewers we know of
    assert (whole["viewers_unique"], whole["conversion"]) == (2, 1.0)
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


async def test_the_snapshot_equals_a_recount_after_any_mix_of_orders_across_two_nodes(
    shop: Api, aiohttp_client: MakeClient, shop_settings: Settings
) -> None:
    """Orders bought on either node (PostgreSQL + Redis: two app instances sharing both), then
    paid, refunded, failed, expired, canceled or left waiting as hypothesis draws; after each
    scenario the snapshot of the host and of each brand equals a recount of the orders table."""
    nodes = [shop, await second_node(aiohttp_client, shop_settings, shop)]
    silk, canvas = await shop.account("brands", "Silk & Co"), await shop.account("brands", "Canvas Ltd")
    host = await shop.account("hosts", "Lin")
    viewers = [await shop.account("viewers", f"V{i}") for i in range(3)]
    for scenario in _scenarios(8):
        products = [
            await shop.product(silk, price=700, stock=100),
            await shop.product(canvas, price=800, stock=100),
        ]
        stream = await shop.stream(host, [p["id"] for p in products])
        for n, (which, viewer, quantity, path, _) in enumerate(scenario):  # all in the show
            node = nodes[n % 2]
            status, order = await buy(node, viewers[viewer], stream, products[which], quantity)
            assert status == 201, order
            await _move(node, viewers[viewer], order, path)
        table = await _paid_orders(shop, stream["id"])
        path_ = f"/api/streams/{stream['id']}/sales"
        _, whole = await nodes[len(scenario) % 2].call("GET", path_, host["token"], expect=200)
        assert _kept(whole) == _recounted(table), scenario
        for brand, mine in ((silk, products[0]["id"]), (canvas, products[1]["id"])):
            _, theirs = await shop.call("GET", path_, brand["token"], expect=200)
            assert _kept(theirs) == _recounted([o for o in table if o["product_id"] == mine]), scenario


async def _move(node: Api, viewer: dict[str, Any], order: dict[str, Any], path: str) -> None:
    """Take the order down `path` the way the server does: the buyer pays or cancels, the admin
    refunds, the payment provider's failure and the expiry sweep through settlement itself."""
    settlement = node.client.app[SHOP].settlement
    pay = f"/api/orders/{order['id']}/demo-pay"
    if path in ("paid", "refunded"):
        await node.call("POST", pay, viewer["token"], expect=200)
    if path == "refunded":
        await node.call("POST", f"/api/orders/{order['id']}/refund", ADMIN_TOKEN, expect=200)
    elif path == "canceled":
        await node.call("POST", f"/api/orders/{order['id']}/cancel", viewer["token"], expect=200)
    elif path in ("failed", "expired"):
        stored = await node.client.app[SHOP].orders.store.get_order(order["id"])
        assert stored is not None
        if path == "failed":
            await settlement.failed(stored)
        else:
            await settlement.give_back(stored, OrderStatus.EXPIRED)


async def _paid_orders(api: Api, stream_id: str) -> list[dict[str, Any]]:
    rows = await api.client.app[DATABASE].fetchall(
        "SELECT product_id, viewer_id, quantity, amount, paid_at FROM orders"
        " WHERE stream_id = $1 AND status = 'paid'",
        stream_id,
    )
    return [dict(r) for r in rows]


def _recounted(paid: list[dict[str, Any]]) -> dict[str, Any]:
    products: dict[str, list[int]] = {}
    minutes: dict[float, list[int]] = {}
    for o in paid:
        row = products.setdefault(o["product_id"], [0, 0, 0])
        row[0], row[1], row[2] = row[0] + 1, row[1] + int(o["quantity"]), row[2] + int(o["amount"])
        minute = minutes.setdefault(math.floor(float(o["paid_at"]) / 60) * 60.0, [0, 0])
        minute[0], minute[1] = minute[0] + 1, minute[1] + int(o["amount"])
    return {
        "orders": len(paid),
        "units": sum(int(o["quantity"]) for o in paid),
        "gmv": sum(int(o["amount"]) for o in paid),
        "buyers": len({o["viewer_id"] for o in paid}),
        "products": {p: tuple(v) for p, v in products.items()},
        "timeline": {t: tuple(v) for t, v in sorted(minutes.items())},
    }


def _kept(figures: dict[str, Any]) -> dict[str, Any]:
    return {
        "orders": figures["orders"],
        "units": figures["units"],
        "gmv": figures["gmv"],
        "buyers": figures["buyers"],
        "products": {
            p["product_id"]: (p["orders"], p["units"], p["gmv"]) for p in figures["products"] if p["orders"]
        },
        "timeline": {m["t"]: (m["orders"], m["gmv"]) for m in figures["timeline"]},
    }
