"""Checkout as buyers and hosts live it: flash sales, orders, demo payments, expiry, a rush.

Runs on in-process stock + SQLite and on Redis stock + PostgreSQL.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from checkout.app import SHOP
from config.settings import Settings
from server.app import DATABASE, create_app
from tests.conftest import ADMIN_TOKEN, Api, MakeClient
from tests.shopping import buy, open_show, start_sale


async def test_a_flash_sale_from_start_to_paid(shop: Api) -> None:
    host, stream, product = await open_show(shop)
    sale = await start_sale(shop, host, stream, product, per_viewer_limit=2)
    assert sale["price"] == 990 and sale["currency"] == "USD" and sale["quantity"] == 3
    assert sale["remaining"] == 3 and sale["state"] == "live" and sale["ends_at"] > time.time() + 170
    _, shown = await shop.call("GET", f"/api/streams/{stream['id']}", expect=200)
    assert shown["sale"]["id"] == sale["id"]
    _, stocked = await shop.call("GET", f"/api/products/{product['id']}", expect=200)
    assert stocked["stock"] == 7  # the sale's units left the product's own stock

    mia = await shop.account("viewers", "Mia Wong")
    status, order = await buy(shop, mia, stream, product, 2, key="tap-1")
    assert status == 201, order
    assert order["status"] == "pending_payment" and order["sale_id"] == sale["id"]
    assert (order["unit_price"], order["amount"], order["currency"]) == (990, 1980, "USD")
    assert order["payment"]["provider"] == "demo" and order["payment"]["client_secret"]
    # a sale's hold lasts sale_hold_ttl_s (180 s), shorter than a regular order's 600 s
    assert time.time() + 170 < order["expires_at"] <= time.time() + 180
    # the same tap retried: the same order; the same key for something else: refused
    status, again = await buy(shop, mia, stream, product, 2, key="tap-1")
    assert status == 200 and again == order
    status, error = await buy(shop, mia, stream, product, 1, key="tap-1")
    assert status == 422 and error["error"]["code"] == "idempotency_key_reused"
    _, shown = await shop.call("GET", f"/api/streams/{stream['id']}", expect=200)
    assert shown["sale"]["remaining"] == 1  # held units count against what is left

    _, paid = await shop.call("POST", f"/api/orders/{order['id']}/demo-pay", mia["token"], expect=200)
    assert paid["status"] == "paid" and paid["payment"]["client_secret"] is None
    _, again = await shop.call("POST", f"/api/orders/{order['id']}/demo-pay", mia["token"], expect=200)
    assert again["status"] == "paid"
    _, fetched = await shop.call("GET", f"/api/orders/{order['id']}", mia["token"], expect=200)
    assert fetched["status"] == "paid"
    orders = shop.client.app[SHOP].orders.store
    figures = await orders.stream_sales(stream["id"])  # what brand monitoring reads
    assert (figures.orders, figures.units, figures.buyers) == (1, 2, 1)
    assert [(p.product_id, p.gmv) for p in figures.products] == [(product["id"], 1980)]
    assert [(m.orders, m.gmv) for m in figures.timeline] == [(1, 1980)]
    # a refund: admin only, paid orders only, once
    status, _ = await shop.call("POST", f"/api/orders/{order['id']}/refund", mia["token"])
    assert status == 403
    _, refunded = await shop.call("POST", f"/api/orders/{order['id']}/refund", ADMIN_TOKEN, expect=200)
    assert refunded["status"] == "refunded"
    await shop.call("POST", f"/api/orders/{order['id']}/refund", ADMIN_TOKEN, expect=200)
    assert (await orders.stream_sales(stream["id"])).orders == 0  # the refund took it back out
    status, error = await shop.call("POST", f"/api/orders/{order['id']}/cancel", mia["token"])
    assert status == 409 and error["error"]["code"] == "order_paid"
    counts = await shop.client.app[SHOP].stock.counts(sale["id"])
    assert (counts.sold, counts.held, counts.remaining) == (2, 0, 1)


async def test_the_room_hears_sale_stock_and_purchase(shop: Api) -> None:
    host, stream, product = await open_show(shop)
    ws = await shop.client.ws_connect(f"/api/streams/{stream['id']}/ws")
    seen: list[dict[str, Any]] = []

    async def until(kind: str) -> dict[str, Any]:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for event in seen:
                if event["type"] == kind:
                    seen.remove(event)
                    return event
            data = await ws.receive_json(timeout=deadline - time.monotonic())
            seen.extend(data if isinstance(data, list) else [data])
        raise TimeoutError(kind)

    await until("hello")
    sale = await start_sale(shop, host, stream, product, quantity=1)
    assert (await until("sale"))["data"]["id"] == sale["id"]
    assert (await until("stock"))["data"] == {"product_id": product["id"], "remaining": 1}
    lin = await shop.account("viewers", "Lin Chen")
    _, order = await buy(shop, lin, stream, product)
    assert (await until("stock"))["data"]["remaining"] == 0
    await shop.call("POST", f"/api/orders/{order['id']}/demo-pay", lin["token"], expect=200)
    purchase = await until("purchase")
    assert purchase["data"] == {"name": "Lin", "product_id": product["id"], "quantity": 1}  # first name only
    ended = await until("sale_end")  # the last unit sold: the sale ends itself
    assert ended["data"]["id"] == sale["id"] and ended["data"]["state"] == "ended"
    await ws.close()


async def test_sold_out_limits_and_cancel_return_units(shop: Api) -> None:
    host, stream, product = await open_show(shop)
    await start_sale(shop, host, stream, product, quantity=2, per_viewer_limit=1)
    a, b, c = [await shop.account("viewers", n) for n in ("A", "B", "C")]
    status, first = await buy(shop, a, stream, product)
    assert status == 201
    status, error = await buy(shop, a, stream, product)
    assert status == 409 and error["error"]["code"] == "limit_reached"
    assert (await buy(shop, b, stream, product))[0] == 201
    status, error = await buy(shop, c, stream, product)
    assert status == 409 and error["error"]["code"] == "sold_out"
    _, canceled = await shop.call("POST", f"/api/orders/{first['id']}/cancel", a["token"], expect=200)
    assert canceled["status"] == "canceled"
    await shop.call("POST", f"/api/orders/{first['id']}/cancel", a["token"], expect=200)  # again: same
    status, order = await buy(shop, c, stream, product)
    assert status == 201, order  # the canceled unit was there for the next buyer
    status, error = await shop.call("POST", f"/api/orders/{first['id']}/demo-pay", a["token"])
    assert status == 409 and error["error"]["code"] == "order_canceled"


async def test_ended_sale_and_regular_purchases(shop: Api) -> None:
    host, stream, product = await open_show(shop, stock=5)
    sale = await start_sale(shop, host, stream, product, quantity=3)
    _, ended = await shop.call(
        "DELETE", f"/api/streams/{stream['id']}/sales/{sale['id']}", host["token"], expect=200
    )
    assert ended["state"] == "ended"
    viewer = await shop.account("viewers")
    status, error = await buy(shop, viewer, stream, product, sale_id=sale["id"])
    assert status == 409 and error["error"]["code"] == "sale_ended"
    # no sale running: the regular price, from the product's own stock
    status, order = await buy(shop, viewer, stream, product, 2)
    assert status == 201 and order["sale_id"] is None and order["unit_price"] == 2900
    _, stocked = await shop.call("GET", f"/api/products/{product['id']}", expect=200)
    assert stocked["stock"] == 0  # 5 - 3 for the sale - 2 held by this order
    upkeep = shop.client.app[SHOP].upkeep
    await upkeep.sweep()  # the ended sale gives its 3 unsold units back
    _, stocked = await shop.call("GET", f"/api/products/{product['id']}", expect=200)
    assert stocked["stock"] == 3
    await upkeep.sweep()
    _, stocked = await shop.call("GET", f"/api/products/{product['id']}", expect=200)
    assert stocked["stock"] == 3  # once only
    status, error = await buy(shop, viewer, stream, product, 4)
    assert status == 409 and error["error"]["code"] == "sold_out"


async def test_unpaid_orders_expire_and_their_units_return(
    aiohttp_client: MakeClient, shop_settings: Settings
) -> None:
    quick = shop_settings.replace(reservation_ttl_s=0.3, sale_hold_ttl_s=0.3)
    shop = Api(await aiohttp_client(create_app(quick)))
    host, stream, product = await open_show(shop)
    sale = await start_sale(shop, host, stream, product, quantity=1)
    viewer = await shop.account("viewers")
    _, held = await buy(shop, viewer, stream, product)
    _, regular_product = await shop.call("GET", f"/api/products/{product['id']}", expect=200)
    await asyncio.sleep(0.4)
    upkeep = shop.client.app[SHOP].upkeep
    await upkeep.sweep()
    _, order = await shop.call("GET", f"/api/orders/{held['id']}", viewer["token"], expect=200)
    assert order["status"] == "expired"
    counts = await shop.client.app[SHOP].stock.counts(sale["id"])
    assert (counts.remaining, counts.held, counts.sold) == (1, 0, 0)
    status, error = await shop.call("POST", f"/api/orders/{held['id']}/demo-pay", viewer["token"])
    assert status == 409 and error["error"]["code"] == "order_expired"
    assert regular_product["stock"] == 9


async def test_bad_orders_change_nothing(shop: Api) -> None:
    host, stream, product = await open_show(shop)
    brand = await shop.account("brands")
    elsewhere = await shop.product(brand, title="Not in this show")
    viewer = await shop.account("viewers")
    other = await shop.account("viewers")
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"quantity": 0}, 422, "quantity"),
        ({"quantity": -1}, 422, "quantity"),
        ({"quantity": 100}, 422, "quantity"),
        ({"product_id": "prd_missing"}, 422, "product_id"),
        ({"product_id": elsewhere["id"]}, 422, "product_id"),
        ({"stream_id": "str_missing"}, 422, "stream_id"),
        ({"sale_id": "sale_missing"}, 422, "sale_id"),
        ({"coupon": "FREE"}, 422, "coupon"),
    ]
    for change, status_wanted, field in cases:
        body = {"stream_id": stream["id"], "product_id": product["id"], "quantity": 1, **change}
        status, error = await shop.call(
            "POST", "/api/orders", viewer["token"], body, headers={"Idempotency-Key": secrets.token_hex(6)}
        )
        assert status == status_wanted and error["error"]["field"] == field, (change, error)
    body = {"stream_id": stream["id"], "product_id": product["id"], "quantity": 1}
    status, error = await shop.call("POST", "/api/orders", viewer["token"], body)
    assert status == 400 and error["error"]["code"] == "idempotency_key_required"
    for token, wanted in ((None, 401), (host["token"], 403), (ADMIN_TOKEN, 403)):
        status, _ = await shop.call("POST", "/api/orders", token, body, headers={"Idempotency-Key": "k"})
        assert status == wanted
    _, stocked = await shop.call("GET", f"/api/products/{product['id']}", expect=200)
    assert stocked["stock"] == 10  # nothing was held by any of that

    _, order = await buy(shop, viewer, stream, product)
    status, _ = await shop.call("GET", f"/api/orders/{order['id']}", other["token"])
    assert status == 403
    status, _ = await shop.call("POST", f"/api/orders/{order['id']}/demo-pay", other["token"])
    assert status == 403
    status, _ = await shop.call("GET", f"/api/orders/{order['id']}", ADMIN_TOKEN)
    assert status == 200
    status, _ = await shop.call("GET", "/api/orders/ord_missing", viewer["token"])
    assert status == 404
    await shop.call("POST", f"/api/orders/{order['id']}/demo-pay", viewer["token"], expect=200)
    status, error = await shop.call("POST", f"/api/orders/{order['id']}/cancel", viewer["token"])
    assert status == 409 and error["error"]["code"] == "order_paid"

    await shop.call("POST", f"/api/streams/{stream['id']}/end", host["token"], expect=200)
    status, error = await shop.call(
        "POST",
        f"/api/streams/{stream['id']}/sales",
        host["token"],
        {"product_id": product["id"], "price": 990, "quantity": 1, "duration_s": 60},
    )
    assert status == 409 and error["error"]["code"] == "stream_ended"


async def test_bad_sales_change_nothing(shop: Api) -> None:
    host, stream, product = await open_show(shop, stock=5)
    other_host = await shop.account("hosts")
    brand = await shop.account("brands")
    elsewhere = await shop.product(brand, title="Not in this show")
    path = f"/api/streams/{stream['id']}/sales"
    good = {"product_id": product["id"], "price": 990, "quantity": 3, "duration_s": 60}
    for change, field in (
        ({"quantity": 6}, "quantity"),
        ({"quantity": 0}, "quantity"),
        ({"price": -1}, "price"),
        ({"duration_s": 0}, "duration_s"),
        ({"per_viewer_limit": 4}, "per_viewer_limit"),
        ({"product_id": elsewhere["id"]}, "product_id"),
    ):
        status, error = await shop.call("POST", path, host["token"], {**good, **change})
        assert status == 422 and error["error"]["field"] == field, (change, error)
    status, _ = await shop.call("POST", path, other_host["token"], good)
    assert status == 403
    status, _ = await shop.call("POST", path, None, good)
    assert status == 401
    _, stocked = await shop.call("GET", f"/api/products/{product['id']}", expect=200)
    assert stocked["stock"] == 5
    await shop.call("POST", path, host["token"], good, expect=201)
    status, error = await shop.call("POST", path, host["token"], {**good, "quantity": 1})
    assert status == 409 and error["error"]["code"] == "sale_running"


async def test_a_rush_sells_exactly_the_quantity(shop: Api) -> None:
    host, stream, product = await open_show(shop, stock=200)
    sale = await start_sale(shop, host, stream, product, quantity=20, per_viewer_limit=1)
    viewers = [await shop.account("viewers", f"buyer{i}") for i in range(120)]
    results = await asyncio.gather(*(buy(shop, v, stream, product) for v in viewers))
    won = [order for status, order in results if status == 201]
    codes = {order["error"]["code"] for status, order in results if status != 201}
    assert len(won) == 20 and codes == {"sold_out"}
    by_id = {v["id"]: v for v in viewers}
    paid = await asyncio.gather(
        *(shop.call("POST", f"/api/orders/{o['id']}/demo-pay", by_id[o["viewer_id"]]["token"]) for o in won)
    )
    assert [status for status, _ in paid] == [200] * 20
    counts = await shop.client.app[SHOP].stock.counts(sale["id"])
    assert (counts.sold, counts.held, counts.remaining) == (20, 0, 0)


async def test_a_retried_tap_gets_its_order_even_after_the_sale_sold_out_or_ended(shop: Api) -> None:
    host, stream, product = await open_show(shop)
    sale = await start_sale(shop, host, stream, product, quantity=1, per_viewer_limit=1)
    viewer = await shop.account("viewers")
    status, order = await buy(shop, viewer, stream, product, key="last-unit", sale_id=sale["id"])
    assert status == 201
    # the answer was lost; the app taps again with the same key: the last unit is its own
    status, again = await buy(shop, viewer, stream, product, key="last-unit", sale_id=sale["id"])
    assert status == 200 and again["id"] == order["id"]
    await shop.call("DELETE", f"/api/streams/{stream['id']}/sales/{sale['id']}", host["token"], expect=200)
    status, again = await buy(shop, viewer, stream, product, key="last-unit", sale_id=sale["id"])
    assert status == 200 and again["id"] == order["id"]
    status, error = await buy(shop, viewer, stream, product, 2, key="last-unit", sale_id=sale["id"])
    assert status == 422 and error["error"]["code"] == "idempotency_key_reused"
    counts = await shop.client.app[SHOP].stock.counts(sale["id"])
    assert (counts.held, counts.remaining) == (1, 0)  # the retries held nothing more


async def test_a_database_that_stops_answering_mid_buy_takes_no_units(shop: Api) -> None:
    host, stream, product = await open_show(shop)
    sale = await start_sale(shop, host, stream, product, quantity=5, per_viewer_limit=5)
    viewer = await shop.account("viewers")
    status, _ = await buy(shop, viewer, stream, product, sale_id=sale["id"])
    assert status == 201  # the stream and sale are now remembered: the next buy reserves first

    await shop.client.app[DATABASE].close()
    taps = await asyncio.gather(*(buy(shop, viewer, stream, product, sale_id=sale["id"]) for _ in range(3)))

    assert [(status, body["error"]["code"]) for status, body in taps] == [(503, "database_unavailable")] * 3
    counts = await shop.client.app[SHOP].stock.counts(sale["id"])
    assert (counts.remaining, counts.held) == (4, 1)  # the refused taps' holds went back
