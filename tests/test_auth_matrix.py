"""Who may call what: every route of API.md against every kind of caller.

401 for no token or a token that is not valid, 403 for a valid token of the
wrong role or owner, success for the right one. A refused call changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from config.settings import Settings
from server.app import create_app
from tests.conftest import ADMIN_TOKEN, Api, MakeClient

CALLERS = ["anonymous", "bad_token", "viewer", "host", "other_host", "brand", "other_brand", "admin"]


@dataclass
class World:
    tokens: dict[str, str | None]
    brand: dict[str, Any]
    host: dict[str, Any]
    product: dict[str, Any]
    stream: dict[str, Any]


async def _world(api: Api) -> World:
    brand, other_brand = await api.account("brands", "B1"), await api.account("brands", "B2")
    host, other_host = await api.account("hosts", "H1"), await api.account("hosts", "H2")
    viewer = await api.account("viewers", "V")
    product = await api.product(brand)
    stream = await api.stream(host, [product["id"]])
    tokens: dict[str, str | None] = {
        "anonymous": None,
        "bad_token": "lc_not-a-real-token",
        "viewer": viewer["token"],
        "host": host["token"],
        "other_host": other_host["token"],
        "brand": brand["token"],
        "other_brand": other_brand["token"],
        "admin": ADMIN_TOKEN,
    }
    return World(tokens, brand, host, product, stream)


def _expect(allowed: dict[str, int], caller: str, public: bool = False) -> int:
    if caller in allowed:
        return allowed[caller]
    if public:
        return 200
    return 401 if caller in ("anonymous", "bad_token") else 403


# (name, method, path template, body template, {caller: success status}, public?)
ROUTES: list[tuple[str, str, str, Any, dict[str, int], bool]] = [
    ("create brand", "POST", "/api/brands", {"name": "n"}, {"admin": 201}, False),
    ("create host", "POST", "/api/hosts", {"name": "n"}, {"admin": 201}, False),
    (
        "create product",
        "POST",
        "/api/products",
        {"title": "t", "price": 1, "currency": "USD", "stock": 1, "brand_id": "{brand}"},
        {"brand": 201, "admin": 201},
        False,
    ),
    ("patch product", "PATCH", "/api/products/{product}", {"stock": 7}, {"brand": 200, "admin": 200}, False),
    (
        "create stream",
        "POST",
        "/api/streams",
        {"title": "t", "products": ["{product}"]},
        {"host": 201},  # the other host has no grant from the product's brand: 403 not_granted
        False,
    ),
    # the world's brand already granted its host: granting again answers 200 (the cap changed)
    # (any brand may grant any host its own products: the other brand's grant is new, 201)
    (
        "grant",
        "POST",
        "/api/brands/me/hosts/{host}",
        {"max_units": 5},
        {"brand": 200, "other_brand": 201},
        False,
    ),
    ("grant for", "POST", "/api/brands/{brand}/hosts/{host}", {}, {"brand": 200, "admin": 200}, False),
    ("list grants", "GET", "/api/brands/me/hosts", None, {"brand": 200, "other_brand": 200}, False),
    ("list grants of", "GET", "/api/brands/{brand}/hosts", None, {"brand": 200, "admin": 200}, False),
    ("revoke", "DELETE", "/api/brands/me/hosts/{host}", None, {"brand": 204, "other_brand": 204}, False),
    ("revoke for", "DELETE", "/api/brands/{brand}/hosts/{host}", None, {"brand": 204, "admin": 204}, False),
    ("end stream", "POST", "/api/streams/{stream}/end", None, {"host": 200, "admin": 200}, False),
    (
        "pin",
        "POST",
        "/api/streams/{stream}/pin",
        {"product_id": "{product}"},
        {"host": 200, "admin": 200},
        False,
    ),
    ("unpin", "DELETE", "/api/streams/{stream}/pin", None, {"host": 204, "admin": 204}, False),
    # the other brand's products are not in the show: it sees nothing of it
    ("sales", "GET", "/api/streams/{stream}/sales", None, {"host": 200, "brand": 200, "admin": 200}, False),
    (
        "sales csv",
        "GET",
        "/api/streams/{stream}/sales.csv",
        None,
        {"host": 200, "brand": 200, "admin": 200},
        False,
    ),
    ("brand sales", "GET", "/api/brands/me/sales", None, {"brand": 200, "other_brand": 200}, False),
]

PUBLIC = [
    ("create viewer", "POST", "/api/viewers", {"name": "n"}, 201),
    ("get product", "GET", "/api/products/{product}", None, 200),
    ("list streams", "GET", "/api/streams", None, 200),
    ("get stream", "GET", "/api/streams/{stream}", None, 200),
    ("health", "GET", "/healthz", None, 200),
]


def _fill(template: Any, world: World) -> Any:
    names = {
        "{brand}": world.brand["id"],
        "{host}": world.host["id"],
        "{product}": world.product["id"],
        "{stream}": world.stream["id"],
    }
    if isinstance(template, str):
        for key, value in names.items():
            template = template.replace(key, value)
        return template
    if isinstance(template, dict):
        return {k: _fill(v, world) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, world) for v in template]
    return template


@pytest.mark.parametrize("route", ROUTES, ids=[r[0] for r in ROUTES])
async def test_protected_route(api: Api, route: tuple[str, str, str, Any, dict[str, int], bool]) -> None:
    name, method, path, body, allowed, _ = route
    for caller in CALLERS:
        world = await _world(api)  # fresh, so an allowed call does not change the next caller's case
        before = await api.call("GET", f"/api/streams/{world.stream['id']}", expect=200)
        product_before = await api.call("GET", f"/api/products/{world.product['id']}", expect=200)
        status, response = await api.call(
            method, _fill(path, world), world.tokens[caller], _fill(body, world)
        )
        expected = _expect(allowed, caller)
        assert status == expected, (name, caller, status, response)
        if status >= 400:
            assert set(response["error"]) >= {"code", "message"}
            code = "unauthorized" if caller == "anonymous" else None
            if code:
                assert response["error"]["code"] == code
            if caller == "bad_token":
                assert response["error"]["code"] == "invalid_token"
            # nothing changed
            assert await api.call("GET", f"/api/streams/{world.stream['id']}") == before
            assert await api.call("GET", f"/api/products/{world.product['id']}") == product_before


@pytest.mark.parametrize("route", PUBLIC, ids=[r[0] for r in PUBLIC])
async def test_public_route(api: Api, route: tuple[str, str, str, Any, int]) -> None:
    name, method, path, body, success = route
    world = await _world(api)
    for caller in CALLERS:
        if caller == "bad_token":
            continue  # a public route does not look at the token
        status, response = await api.call(method, _fill(path, world), world.tokens[caller], body)
        assert status == success, (name, caller, status, response)


async def test_malformed_authorization_header_is_401(api: Api) -> None:
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer ", ADMIN_TOKEN):
        status, body = await api.call(
            "POST", "/api/brands", json={"name": "n"}, headers={"Authorization": header}
        )
        assert status == 401 and body["error"]["code"] == "unauthorized", header


async def test_an_address_guessing_tokens_is_slowed_down_but_known_tokens_still_pass(api: Api) -> None:
    brand = await api.account("brands")
    await api.product(brand)  # its token is in use: known, remembered
    guesses = [await api.call("GET", "/api/orders/x", f"lc_{i:040d}") for i in range(31)]
    assert [status for status, _ in guesses[:30]] == [401] * 30
    status, body = guesses[30]
    assert (status, body["error"]["code"]) == (429, "rate_limited")
    response = await api.client.get("/api/orders/x", headers={"Authorization": "Bearer lc_" + "9" * 40})
    assert response.status == 429 and int(response.headers["Retry-After"]) >= 1
    # the accounts already in use behind that address are not locked out
    status, _ = await api.call(
        "POST", "/api/products", brand["token"], {"title": "t", "price": 1, "currency": "USD", "stock": 1}
    )
    assert status == 201


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_allowance(
    aiohttp_client: MakeClient, settings: Settings
) -> None:
    api = Api(await aiohttp_client(create_app(settings.replace(trusted_proxies=("127.0.0.1",)))))
    for client in ("203.0.113.7", "203.0.113.8"):
        for _ in range(30):
            response = await api.client.get(
                "/api/orders/x",
                headers={"Authorization": "Bearer lc_nope", "X-Forwarded-For": f"10.0.0.1, {client}"},
            )
            assert response.status == 401
    response = await api.client.get(
        "/api/orders/x", headers={"Authorization": "Bearer lc_nope", "X-Forwarded-For": "203.0.113.7"}
    )
    assert response.status == 429
