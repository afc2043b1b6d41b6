"""Streams over HTTP: a host creates a show with products, pins, ends it; anyone reads it."""

from __future__ import annotations

from typing import Any

from streaming.app import SHOW
from streaming.records import StreamState
from tests.conftest import ADMIN_TOKEN, Api


async def _show(api: Api) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    brand = await api.account("brands")
    host = await api.account("hosts", "Mia")
    products = [await api.product(brand, title=t) for t in ("Scarf", "Tint", "Tote")]
    stream = await api.stream(host, [products[2]["id"], products[0]["id"]], title="Friday show")
    return host, stream, products


async def test_created_stream_shows_products_in_order_and_urls(api: Api) -> None:
    host, stream, _ = await _show(api)
    assert stream["title"] == "Friday show" and stream["host_id"] == host["id"]
    assert stream["host_name"] == host["name"]
    assert stream["state"] == "scheduled"
    assert [p["title"] for p in stream["products"]] == ["Tote", "Scarf"]
    assert stream["pinned"] is None and stream["sale"] is None and stream["viewers"] == 0
    base = f"http://livecart.test/api/streams/{stream['id']}"
    assert stream["whip_url"] == f"{base}/whip" and stream["whep_url"] == f"{base}/whep"
    assert stream["watch_url"] == f"http://livecart.test/watch/{stream['id']}"
    assert stream["started_at"] is None and stream["ended_at"] is None
    _, fetched = await api.call("GET", f"/api/streams/{stream['id']}", expect=200)
    assert fetched == stream


async def test_pin_and_unpin(api: Api) -> None:
    host, stream, products = await _show(api)
    path = f"/api/streams/{stream['id']}/pin"
    _, body = await api.call("POST", path, host["token"], {"product_id": products[0]["id"]}, expect=200)
    assert body == {"pinned": products[0]}
    _, fetched = await api.call("GET", f"/api/streams/{stream['id']}", expect=200)
    assert fetched["pinned"] == products[0]
    # a product of the catalog that is not in this show cannot be pinned
    status, error = await api.call("POST", path, host["token"], {"product_id": products[1]["id"]})
    assert status == 422 and error["error"]["code"] == "product_not_in_stream"
    _, fetched = await api.call("GET", f"/api/streams/{stream['id']}", expect=200)
    assert fetched["pinned"] == products[0]
    await api.call("DELETE", path, host["token"], expect=204)
    _, fetched = await api.call("GET", f"/api/streams/{stream['id']}", expect=200)
    assert fetched["pinned"] is None
    await api.call("DELETE", path, host["token"], expect=204)  # unpinning twice is fine


async def test_end_is_idempotent_and_ended_stream_refuses_pins(api: Api) -> None:
    host, stream, products = await _show(api)
    _, ended = await api.call("POST", f"/api/streams/{stream['id']}/end", host["token"], expect=200)
    assert ended["state"] == "ended" and ended["ended_at"] is not None
    _, again = await api.call("POST", f"/api/streams/{stream['id']}/end", host["token"], expect=200)
    assert again["ended_at"] == ended["ended_at"]
    status, error = await api.call(
        "POST", f"/api/streams/{stream['id']}/pin", host["token"], {"product_id": products[0]["id"]}
    )
    assert status == 409 and error["error"]["code"] == "stream_ended"


async def test_list_puts_live_first_then_scheduled_then_ended(api: Api) -> None:
    host, first, _ = await _show(api)
    second = await api.stream(host, [], title="Second")
    third = await api.stream(host, [], title="Third")
    await api.call("POST", f"/api/streams/{first['id']}/end", host["token"], expect=200)
    # going live is WHIP's job; here the domain call stands in for a publisher connecting
    await api.client.app[SHOW].streams.set_state(third["id"], StreamState.LIVE)
    _, body = await api.call("GET", "/api/streams", expect=200)
    assert [s["title"] for s in body["streams"]] == ["Third", "Second", "Friday show"]
    assert [s["state"] for s in body["streams"]] == ["live", "scheduled", "ended"]
    assert {s["host_name"] for s in body["streams"]} == {host["name"]}
    assert body["streams"][0]["started_at"] is not None
    assert second["id"] in {s["id"] for s in body["streams"]}


async def test_stream_input_is_validated(api: Api) -> None:
    host = await api.account("hosts")
    brand = await api.account("brands")
    product = await api.product(brand)
    cases = [
        ({"title": "", "products": []}, "title"),
        ({"products": []}, "title"),
        ({"title": "x", "products": ["prd_missing"]}, "products"),
        ({"title": "x", "products": [product["id"], product["id"]]}, "products"),
        ({"title": "x", "products": "prd"}, "products"),
        ({"title": "x", "products": [], "extra": 1}, "extra"),
    ]
    for body, field in cases:
        status, error = await api.call("POST", "/api/streams", host["token"], body)
        assert status == 422 and error["error"]["field"] == field, (body, error)
    _, listing = await api.call("GET", "/api/streams", expect=200)
    assert listing["streams"] == []


async def test_unknown_stream_is_404(api: Api) -> None:
    host = await api.account("hosts")
    for method, suffix in (("GET", ""), ("POST", "/end"), ("DELETE", "/pin")):
        status, body = await api.call(method, f"/api/streams/str_missing{suffix}", host["token"])
        assert status == 404 and body["error"]["code"] == "stream_not_found", (method, suffix)


async def test_admin_may_end_any_stream(api: Api) -> None:
    _, stream, _ = await _show(api)
    _, ended = await api.call("POST", f"/api/streams/{stream['id']}/end", ADMIN_TOKEN, expect=200)
    assert ended["state"] == "ended"
