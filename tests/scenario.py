"""The flash-sale scenario the rush tests, the crash tests and bench/checkout.py all start from.

Over HTTP, as an operator and a host would: the admin makes a brand and a host, the brand a
product, the host a stream showing it and a flash sale of it, and `buyers` viewers sign up.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass(frozen=True)
class FlashSale:
    host: dict[str, Any]
    product: dict[str, Any]
    stream: dict[str, Any]
    sale: dict[str, Any]
    viewers: list[dict[str, Any]]


async def _created(
    http: aiohttp.ClientSession, url: str, token: str | None, body: dict[str, Any]
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(url, json=body, headers=headers) as response:
        answer: dict[str, Any] = await response.json()
        assert response.status == 201, (url, response.status, answer)
        return answer


async def flash_sale(
    http: aiohttp.ClientSession,
    base: str,
    admin_token: str,
    *,
    units: int,
    buyers: int,
    stock: int | None = None,
    price: int = 990,
    duration_s: float = 300,
    per_viewer_limit: int = 1,
) -> FlashSale:
    """A sale of `units` (out of the product's `stock`, default the same) and `buyers` viewers."""
    brand = await _created(http, f"{base}/api/brands", admin_token, {"name": "Acme"})
    host = await _created(http, f"{base}/api/hosts", admin_token, {"name": "Mia"})
    product = await _created(
        http,
        f"{base}/api/products",
        brand["token"],
        {"title": "Scarf", "price": 2900, "currency": "USD", "stock": units if stock is None else stock},
    )
    await _created(http, f"{base}/api/brands/me/hosts/{host['id']}", brand["token"], {})  # consent
    stream = await _created(
        http, f"{base}/api/streams", host["token"], {"title": "Flash sale", "products": [product["id"]]}
    )
    sale = await _created(
        http,
        f"{base}/api/streams/{stream['id']}/sales",
        host["token"],
        {
            "product_id": product["id"],
            "price": price,
            "quantity": units,
            "duration_s": duration_s,
            "per_viewer_limit": per_viewer_limit,
        },
    )
    viewers = await asyncio.gather(
        *(_created(http, f"{base}/api/viewers", None, {"name": f"buyer {i}"}) for i in range(buyers))
    )
    return FlashSale(host, product, stream, sale, list(viewers))
