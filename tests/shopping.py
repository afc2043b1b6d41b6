"""A shop to test with: a brand's product in a host's show, a flash sale of it, a viewer's buy."""

from __future__ import annotations

import secrets
from typing import Any

from tests.conftest import Api


async def open_show(api: Api, stock: int = 10) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    brand = await api.account("brands")
    host = await api.account("hosts", "Mia")
    product = await api.product(brand, title="Silk scarf", price=2900, stock=stock)
    stream = await api.stream(host, [product["id"]])
    return host, stream, product


async def buy(
    api: Api,
    viewer: dict[str, Any],
    stream: dict[str, Any],
    product: dict[str, Any],
    quantity: int = 1,
    key: str | None = None,
    **extra: Any,
) -> tuple[int, Any]:
    body = {"stream_id": stream["id"], "product_id": product["id"], "quantity": quantity, **extra}
    headers = {"Idempotency-Key": key or secrets.token_hex(8)}
    return await api.call("POST", "/api/orders", viewer["token"], body, headers=headers)


async def start_sale(
    api: Api, host: dict[str, Any], stream: dict[str, Any], product: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    body = {"product_id": product["id"], "price": 990, "quantity": 3, "duration_s": 180, **fields}
    _, sale = await api.call("POST", f"/api/streams/{stream['id']}/sales", host["token"], body, expect=201)
    return dict(sale)


async def paid(
    api: Api, viewer: dict[str, Any], stream: dict[str, Any], product: dict[str, Any], quantity: int = 1
) -> str:
    """An order bought and paid (demo provider): its id."""
    status, order = await buy(api, viewer, stream, product, quantity)
    assert status == 201, order
    await api.call("POST", f"/api/orders/{order['id']}/demo-pay", viewer["token"], expect=200)
    return str(order["id"])
