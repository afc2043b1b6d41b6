"""Consent and price floors: a brand decides who features its products and how cheaply they sell.

The case a new user found: host B put brand A's product in his own stream and sold all of its
stock at price 0 for 24 hours. Every refusal here is the API's error body with its code, and
changes nothing.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import ADMIN_TOKEN, Api
from tests.shopping import buy, start_sale


async def _brand_and_host(api: Api, **product: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    brand = await api.account("brands", "Silk & Co")
    host = await api.account("hosts", "Bo")
    item = await api.product(brand, **{"title": "Silk scarf", "price": 2900, "stock": 50, **product})
    return brand, host, item


async def test_an_ungranted_host_can_neither_show_pin_nor_sell_a_brands_product(api: Api) -> None:
    brand, host, item = await _brand_and_host(api)
    _, refused = await api.call(
        "POST", "/api/streams", host["token"], {"title": "Mine", "products": [item["id"]]}, expect=403
    )
    assert refused["error"]["code"] == "not_granted" and "Silk scarf" in refused["error"]["message"]
    _, listing = await api.call("GET", "/api/streams", expect=200)
    assert listing["streams"] == []  # nothing was made

    stream = await api.stream(host, [item["id"]])  # with the brand's grant
    await api.call("DELETE", f"/api/brands/me/hosts/{host['id']}", brand["token"], expect=204)
    pin = {"product_id": item["id"]}
    _, refused = await api.call("POST", f"/api/streams/{stream['id']}/pin", host["token"], pin, expect=403)
    assert refused["error"]["code"] == "not_granted"
    sale = {"product_id": item["id"], "price": 0, "quantity": 50, "duration_s": 86400}
    _, refused = await api.call("POST", f"/api/streams/{stream['id']}/sales", host["token"], sale, expect=403)
    assert refused["error"]["code"] == "not_granted"
    _, now = await api.call("GET", f"/api/streams/{stream['id']}", expect=200)
    assert now["pinned"] is None and now["sale"] is None
    _, product = await api.call("GET", f"/api/products/{item['id']}", expect=200)
    assert product["stock"] == 50


async def test_a_sale_keeps_to_the_brands_floor_and_the_grants_cap(api: Api) -> None:
    brand, host, item = await _brand_and_host(api, min_price=2000)
    stream = await api.stream(host, [item["id"]])
    await api.grant(brand, host, max_units=5)
    path = f"/api/streams/{stream['id']}/sales"
    body = {"product_id": item["id"], "duration_s": 60}
    _, refused = await api.call(
        "POST", path, host["token"], {**body, "price": 1999, "quantity": 5}, expect=422
    )
    assert refused["error"]["code"] == "below_min_price"
    _, refused = await api.call(
        "POST", path, host["token"], {**body, "price": 2000, "quantity": 6}, expect=422
    )
    assert refused["error"]["code"] == "over_max_units"
    _, now = await api.call("GET", f"/api/streams/{stream['id']}", expect=200)
    assert now["sale"] is None
    _, sale = await api.call("POST", path, host["token"], {**body, "price": 2000, "quantity": 5}, expect=201)
    assert sale["price"] == 2000 and sale["quantity"] == 5


async def test_granting_again_changes_the_cap_and_the_brand_lists_its_hosts(api: Api) -> None:
    brand, host, _ = await _brand_and_host(api)
    path = f"/api/brands/me/hosts/{host['id']}"
    _, first = await api.call("POST", path, brand["token"], {"max_units": 10}, expect=201)
    assert first["brand_id"] == brand["id"] and first["host_id"] == host["id"] and first["max_units"] == 10
    _, second = await api.call("POST", path, brand["token"], {"max_units": None}, expect=200)
    assert second["max_units"] is None and second["created_at"] == first["created_at"]
    _, listed = await api.call("GET", "/api/brands/me/hosts", brand["token"], expect=200)
    assert listed == {"grants": [second]}
    # the admin acts for any brand, and sees the same list
    _, for_brand = await api.call("GET", f"/api/brands/{brand['id']}/hosts", ADMIN_TOKEN, expect=200)
    assert for_brand == listed


async def test_grants_name_real_hosts_and_brands(api: Api) -> None:
    brand, host, _ = await _brand_and_host(api)
    viewer = await api.account("viewers", "Vi")
    for who in ("acc_nobody", viewer["id"], brand["id"]):
        _, refused = await api.call("POST", f"/api/brands/me/hosts/{who}", brand["token"], {}, expect=404)
        assert refused["error"]["code"] == "host_not_found"
    _, refused = await api.call(
        "POST", f"/api/brands/{host['id']}/hosts/{host['id']}", ADMIN_TOKEN, {}, expect=404
    )
    assert refused["error"]["code"] == "brand_not_found"
    for bad in ({"max_units": 0}, {"max_units": "5"}, {"cap": 5}):
        await api.call("POST", f"/api/brands/me/hosts/{host['id']}", brand["token"], bad, expect=422)
    _, listed = await api.call("GET", "/api/brands/me/hosts", brand["token"], expect=200)
    assert listed == {"grants": []}


async def test_revoking_ends_that_hosts_running_sales_of_the_brand_only(api: Api) -> None:
    brand, host, item = await _brand_and_host(api)
    other_host = await api.account("hosts", "Cy")
    mine = await api.stream(host, [item["id"]])
    theirs = await api.stream(other_host, [item["id"]])
    await start_sale(api, host, mine, item)
    await start_sale(api, other_host, theirs, item)
    viewer = await api.account("viewers", "Vi")
    status, _ = await buy(api, viewer, mine, item)
    assert status == 201

    await api.call("DELETE", f"/api/brands/me/hosts/{host['id']}", brand["token"], expect=204)
    _, now = await api.call("GET", f"/api/streams/{mine['id']}", expect=200)
    assert now["sale"] is None  # ended at once
    _, still = await api.call("GET", f"/api/streams/{theirs['id']}", expect=200)
    assert still["sale"] is not None and still["sale"]["state"] == "live"  # another host's sale goes on
    # revoking again (or a grant that never was) changes nothing
    await api.call("DELETE", f"/api/brands/me/hosts/{host['id']}", brand["token"], expect=204)


async def test_a_floor_is_never_above_the_price(api: Api) -> None:
    brand = await api.account("brands", "Silk & Co")
    body = {"title": "Scarf", "price": 1000, "currency": "USD", "stock": 1, "min_price": 1001}
    _, refused = await api.call("POST", "/api/products", brand["token"], body, expect=422)
    assert refused["error"]["code"] == "invalid_field"
    item = await api.product(brand, price=1000, min_price=800)
    assert item["min_price"] == 800
    path = f"/api/products/{item['id']}"
    await api.call("PATCH", path, brand["token"], {"price": 700}, expect=422)
    await api.call("PATCH", path, brand["token"], {"min_price": 1200}, expect=422)
    _, changed = await api.call("PATCH", path, brand["token"], {"price": 1500, "min_price": 1200}, expect=200)
    assert (changed["price"], changed["min_price"]) == (1500, 1200)
