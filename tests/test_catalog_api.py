"""Accounts and the catalog over HTTP, as a brand, an admin and a viewer would use them."""

from __future__ import annotations

import pytest

from tests.conftest import ADMIN_TOKEN, Api


async def test_admin_creates_brand_and_host_with_working_tokens(api: Api) -> None:
    brand = await api.account("brands", "Acme")
    host = await api.account("hosts", "Mia")
    assert brand["name"] == "Acme" and brand["role"] == "brand"
    assert host["name"] == "Mia" and host["role"] == "host"
    assert brand["token"] != host["token"] and len(brand["token"]) > 30
    # the brand's token works: it can add a product
    product = await api.product(brand)
    assert product["brand_id"] == brand["id"]


async def test_anyone_gets_a_viewer_session(api: Api) -> None:
    viewer = await api.account("viewers", "  Lin  ")
    assert viewer["name"] == "Lin" and viewer["role"] == "viewer"


async def test_product_round_trip(api: Api) -> None:
    brand = await api.account("brands")
    created = await api.product(
        brand,
        title="Lip tint",
        price=1500,
        currency="jpy",
        stock=200,
        image_url="https://cdn.example/tint.png",
        description="Three shades",
    )
    assert created == {
        "id": created["id"],
        "brand_id": brand["id"],
        "title": "Lip tint",
        "price": 1500,
        "currency": "JPY",
        "stock": 200,
        "image_url": "https://cdn.example/tint.png",
        "description": "Three shades",
        "min_price": 0,
    }
    _, fetched = await api.call("GET", f"/api/products/{created['id']}", expect=200)
    assert fetched == created


async def test_admin_creates_product_for_a_brand(api: Api) -> None:
    brand = await api.account("brands")
    body = {"title": "Tote", "price": 3900, "currency": "EUR", "stock": 3, "brand_id": brand["id"]}
    _, product = await api.call("POST", "/api/products", ADMIN_TOKEN, body, expect=201)
    assert product["brand_id"] == brand["id"]
    body["brand_id"] = "acc_nope"
    status, error = await api.call("POST", "/api/products", ADMIN_TOKEN, body)
    assert status == 422 and error["error"]["field"] == "brand_id"
    del body["brand_id"]
    status, error = await api.call("POST", "/api/products", ADMIN_TOKEN, body)
    assert status == 422 and error["error"]["field"] == "brand_id"


async def test_patch_changes_only_given_fields_and_can_restock(api: Api) -> None:
    brand = await api.account("brands")
    product = await api.product(brand, stock=5)
    _, patched = await api.call(
        "PATCH",
        f"/api/products/{product['id']}",
        brand["token"],
        {"stock": 50, "price": 2500},
        expect=200,
    )
    assert patched == {**product, "stock": 50, "price": 2500}
    _, patched = await api.call(
        "PATCH",
        f"/api/products/{product['id']}",
        brand["token"],
        {"description": None},
        expect=200,
    )
    assert patched["description"] is None and patched["stock"] == 50
    _, fetched = await api.call("GET", f"/api/products/{product['id']}", expect=200)
    assert fetched == patched


async def test_a_brand_cannot_touch_another_brands_product(api: Api) -> None:
    mine, theirs = await api.account("brands", "Mine"), await api.account("brands", "Theirs")
    product = await api.product(theirs)
    status, error = await api.call("PATCH", f"/api/products/{product['id']}", mine["token"], {"stock": 0})
    assert status == 403 and error["error"]["code"] == "forbidden"
    _, fetched = await api.call("GET", f"/api/products/{product['id']}", expect=200)
    assert fetched == product
    # nor create one in another brand's name
    body = {"title": "x", "price": 1, "currency": "USD", "stock": 1, "brand_id": theirs["id"]}
    status, _ = await api.call("POST", "/api/products", mine["token"], body)
    assert status == 403


GOOD = {"title": "Scarf", "price": 2900, "currency": "USD", "stock": 10}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"price": -1}, "price"),
        ({"stock": -5}, "stock"),
        ({"price": "12"}, "price"),
        ({"price": 12.5}, "price"),
        ({"price": True}, "price"),
        ({"currency": "XYZ"}, "currency"),
        ({"currency": "US"}, "currency"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"image_url": "javascript:alert(1)"}, "image_url"),
        ({"colour": "red"}, "colour"),
        ({"title": None}, "title"),
    ],
)
async def test_invalid_product_is_422_naming_the_field_and_writes_nothing(
    api: Api, change: dict[str, object], field: str
) -> None:
    brand = await api.account("brands")
    status, body = await api.call("POST", "/api/products", brand["token"], {**GOOD, **change})
    assert status == 422, body
    assert body["error"]["field"] == field
    assert field in body["error"]["message"]
    # the same changes as a PATCH are refused too and leave the product as it was
    product = await api.product(brand)
    status, body = await api.call("PATCH", f"/api/products/{product['id']}", brand["token"], change)
    assert status == 422 and body["error"]["field"] == field
    _, fetched = await api.call("GET", f"/api/products/{product['id']}", expect=200)
    assert fetched == product


@pytest.mark.parametrize("missing", ["title", "price", "currency", "stock"])
async def test_missing_field_is_422_naming_it(api: Api, missing: str) -> None:
    brand = await api.account("brands")
    body = {k: v for k, v in GOOD.items() if k != missing}
    status, error = await api.call("POST", "/api/products", brand["token"], body)
    assert status == 422 and error["error"]["field"] == missing


async def test_unknown_product_is_404(api: Api) -> None:
    status, body = await api.call("GET", "/api/products/prd_missing")
    assert status == 404 and body["error"]["code"] == "product_not_found"
    brand = await api.account("brands")
    status, body = await api.call("PATCH", "/api/products/prd_missing", brand["token"], {"stock": 1})
    assert status == 404


@pytest.mark.parametrize("kind", ["brands", "hosts", "viewers"])
async def test_account_names_are_validated(api: Api, kind: str) -> None:
    for bad in ({"name": ""}, {"name": " "}, {"name": "x" * 81}, {}, {"name": 5}):
        status, body = await api.call("POST", f"/api/{kind}", ADMIN_TOKEN, bad)
        assert status == 422 and body["error"]["field"] == "name", (bad, body)
