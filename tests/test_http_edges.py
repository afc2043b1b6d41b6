"""The edges every route shares: error bodies, limits, content types, CORS, health, metrics."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp.web_protocol import RequestHandler

from server.app import DATABASE
from tests.conftest import ADMIN_TOKEN, Api

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def _raw(
    api: Api, method: str, path: str, data: bytes, content_type: str | None
) -> tuple[int, dict[str, Any]]:
    headers = dict(AUTH)
    if content_type:
        headers["Content-Type"] = content_type
    response = await api.client.request(method, path, data=data, headers=headers)
    return response.status, await response.json()


async def test_malformed_json_is_400_and_writes_nothing(api: Api) -> None:
    for data in (b"{", b"not json", b"", b"   ", b'{"name": "x",}'):
        status, body = await _raw(api, "POST", "/api/brands", data, "application/json")
        assert status == 400, data
        assert body["error"]["code"] == "malformed_json"
    status, body = await _raw(api, "POST", "/api/brands", b"[1, 2]", "application/json")
    assert status == 422  # valid JSON, wrong shape
    brand = await api.account("brands")
    product = await api.product(brand)
    status, _ = await _raw(api, "PATCH", f"/api/products/{product['id']}", b'{"stock": 1', "application/json")
    assert status == 400
    assert (await api.call("GET", f"/api/products/{product['id']}"))[1] == product


async def test_wrong_content_type_is_415(api: Api) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        status, body = await _raw(api, "POST", "/api/brands", b'{"name": "x"}', content_type)
        assert status == 415, content_type
        assert body["error"]["code"] == "unsupported_media_type"


async def test_body_over_the_limit_is_413(api: Api) -> None:
    big = b'{"name": "' + b"x" * (70 * 1024) + b'"}'
    status, body = await _raw(api, "POST", "/api/brands", big, "application/json")
    assert status == 413 and body["error"]["code"] == "payload_too_large"

    # also when the client streams it without announcing the length
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(70):
            yield b"x" * 1024

    response = await api.client.post(
        "/api/brands", data=chunks(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "payload_too_large"


async def test_unknown_path_and_method(api: Api) -> None:
    status, body = await api.call("GET", "/api/nothing-here")
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = await api.call("PUT", "/api/streams")
    assert status == 405 and body["error"]["code"] == "method_not_allowed"


async def test_cors_allows_only_configured_origins(api: Api) -> None:
    preflight = {
        "Origin": "https://shop.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    response = await api.client.options("/api/products", headers=preflight)
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]

    response = await api.client.options(
        "/api/products", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert "Access-Control-Allow-Origin" not in response.headers

    response = await api.client.get("/api/streams", headers={"Origin": "https://shop.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    response = await api.client.get("/api/nothing", headers={"Origin": "https://shop.example"})
    assert response.status == 404  # error bodies are readable cross-origin too
    assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    response = await api.client.get("/api/streams", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_health_and_readiness(api: Api) -> None:
    _, body = await api.call("GET", "/healthz", expect=200)
    assert body == {"status": "ok"}
    _, body = await api.call("GET", "/readyz", expect=200)
    assert body == {"status": "ready", "checks": {"database": "ok"}}


async def test_readiness_names_the_database_when_it_stops_answering(api: Api) -> None:
    await api.client.app[DATABASE].close()
    status, body = await api.call("GET", "/readyz")
    assert status == 503
    assert body["error"]["code"] == "not_ready"
    assert body["error"]["message"].startswith("database:")
    assert body["checks"]["database"] != "ok"
    status, _ = await api.call("GET", "/healthz")
    assert status == 200  # the process itself is still up
    status, body = await api.call("GET", "/api/streams")  # a dependency down: 503, not a 500
    assert status == 503
    assert body["error"] == {
        "code": "database_unavailable",
        "message": "the database does not answer; try again",
    }


async def test_metrics_count_requests_by_route(api: Api) -> None:
    brand = await api.account("brands")
    product = await api.product(brand)
    for _ in range(3):
        await api.call("GET", f"/api/products/{product['id']}", expect=200)
    await api.call("GET", "/api/products/prd_nope", expect=404)
    response = await api.client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert (
        'livecart_http_requests_total{method="GET",route="/api/products/{product_id}",status="200"} 3.0'
        in text
    )
    assert (
        'livecart_http_requests_total{method="GET",route="/api/products/{product_id}",status="404"} 1.0'
        in text
    )
    assert (
        'livecart_http_request_duration_seconds_count{method="GET",route="/api/products/{product_id}"} 4.0'
        in text
    )
    assert "process_cpu_seconds_total" in text


async def test_metrics_count_methods_the_api_never_uses_as_other(api: Api) -> None:
    for method in ("PROPFIND", "MKCOL", "LOCK", "PROPFIND", "SEARCH"):  # WebDAV: HTTP parses them
        response = await api.client.request(method, "/api/products/prd_x")
        assert response.status == 405
    text = await (await api.client.get("/metrics")).text()
    assert "PROPFIND" not in text and "MKCOL" not in text
    counted = [line for line in text.splitlines() if line.startswith("livecart_http_requests_total{")]
    assert counted == ['livecart_http_requests_total{method="other",route="unmatched",status="405"} 5.0']


async def test_index_page_is_served(api: Api) -> None:
    response = await api.client.get("/")
    assert response.status == 200
    assert "text/html" in response.headers["Content-Type"]
    assert '<script type="module" src="/static/index.js">' in await response.text()
    module = await api.client.get("/static/index.js")
    assert module.status == 200 and "javascript" in module.headers["Content-Type"]
    assert "/api/streams" in await module.text()


async def test_requests_aiohttp_cannot_parse_get_the_json_error_and_one_warning(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    # The hook replaces this method of aiohttp's protocol: an upgrade that moves it fails here.
    assert inspect.signature(RequestHandler.handle_error).parameters.keys() >= {"request", "status", "exc"}
    caplog.set_level(logging.DEBUG)
    for raw in (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",  # a header line over 8 KiB
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nFOO@ / HTTP/1.1\r\nHost: x\r\n\r\n",  # 2nd: bad method
    ):
        reader, writer = await asyncio.open_connection(api.client.host, api.client.port)
        writer.write(raw)
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        last = answer[answer.rfind(b"HTTP/1.") :]
        head, _, body = last.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.") and b" 400 " in head.split(b"\r\n")[0], head
        assert b"Content-Type: application/json" in head
        assert orjson.loads(body)["error"]["code"] == "bad_request"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    warned = [r for r in caplog.records if r.getMessage() == "unreadable request"]
    assert len(warned) == 3 and all(r.exc_info is None for r in warned)


async def test_me_says_who_a_token_belongs_to_and_refuses_without_one(api: Api) -> None:
    host = await api.account("hosts", "Lin")
    viewer = await api.account("viewers", "Mia")
    for account, role in ((host, "host"), (viewer, "viewer")):
        _, me = await api.call("GET", "/api/me", account["token"], expect=200)
        assert me == {"id": account["id"], "name": account["name"], "role": role}
    _, admin = await api.call("GET", "/api/me", ADMIN_TOKEN, expect=200)
    assert admin["role"] == "admin"
    _, body = await api.call("GET", "/api/me", expect=401)
    assert body["error"]["code"] == "unauthorized"
    _, body = await api.call("GET", "/api/me", "lc_not_a_token", expect=401)
    assert body["error"]["code"] == "invalid_token"
