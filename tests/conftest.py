"""Fixtures shared by the suite: databases (SQLite and PostgreSQL), a running app, accounts.

Every API test runs against both stores through the `database_url` fixture. PostgreSQL
is the real server (LIVECART_TEST_DATABASE_URL, default the local `test` database);
each test gets a schema of its own, dropped afterwards. An unreachable PostgreSQL
fails the tests: it is never a skip.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server.app import create_app
from tests.databases import PG_URL, Backend, Stores, postgres_backend, sqlite_backend
from tests.procs import ServerProcess, cluster, free_port
from tests.redis_cluster import RedisCluster
from tests.redis_server import RedisServer

__all__ = ["ADMIN_TOKEN", "PG_URL", "REDIS_URL", "Api", "AppClient", "MakeClient", "free_port"]

REDIS_URL = os.environ.get("LIVECART_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN_TOKEN = "test-admin-token-" + "x" * 16

# aiohttp's test client of a whole livecart app, and the pytest-aiohttp fixture that makes one.
AppClient = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[AppClient]]


@pytest.fixture
async def pg_schema_url() -> AsyncIterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema (asyncpg passes unknown
    query parameters as server settings)."""
    schema = "t_" + secrets.token_hex(6)
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}search_path={schema}"
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, which the test may stop and start again."""
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A three-master Redis Cluster shared by the suites that run on `redis-cluster` (their
    keys are the tests' own random rooms, sales and streams); started on first use."""
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    yield cluster
    cluster.stop()


def redis_for(request: pytest.FixtureRequest) -> tuple[str, bool]:
    """The Redis a suite's `redis` or `redis-cluster` parameter names: its URL, and whether
    it is a cluster."""
    if request.param == "redis-cluster":
        return request.getfixturevalue("redis_cluster").url, True
    return REDIS_URL, False


@pytest.fixture
def two_nodes(tmp_path: Path, redis_server: RedisServer) -> Iterator[list[ServerProcess]]:
    """Two `livecart serve` processes sharing one SQLite file and the test's Redis."""
    env = {
        "LIVECART_DATA_DIR": str(tmp_path / "shared-data"),
        "LIVECART_ADMIN_TOKEN": ADMIN_TOKEN,
        "LIVECART_REDIS_URL": redis_server.url,
        "LIVECART_ICE_ADDRESSES": "127.0.0.1",
        "LIVECART_PUBLISHER_GRACE_S": "1",
    }
    with cluster(tmp_path, env) as nodes:
        yield nodes


@pytest.fixture(params=["sqlite", "postgresql"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A database of this test's own for the store suites, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        async with sqlite_backend(tmp_path) as backend:
            yield backend
    else:
        async with postgres_backend() as backend:
            yield backend


@pytest.fixture
async def stores(backend: Backend) -> Stores:
    return await backend.open()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'livecart.db'}"
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@pytest.fixture(params=["sqlite+memory", "postgresql+redis"])
def shop_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """A shop on in-process stock + SQLite, and on Redis stock + PostgreSQL."""
    database, stock = request.param.split("+")
    if database == "sqlite":
        url = f"sqlite:///{tmp_path / 'shop.db'}"
    else:
        url = request.getfixturevalue("pg_schema_url")
    return Settings(
        data_dir=tmp_path,
        database_url=url,
        admin_token=ADMIN_TOKEN,
        redis_url=REDIS_URL if stock == "redis" else None,
        public_url="http://livecart.test",
        reservation_ttl_s=600,
    )


@pytest.fixture
async def shop(aiohttp_client: MakeClient, shop_settings: Settings) -> Api:
    return Api(await aiohttp_client(create_app(shop_settings)))


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        public_url="http://livecart.test",
        cors_origins=("https://shop.example",),
        max_body_bytes=64 * 1024,
    )


@dataclass
class Api:
    """A test client that knows how to authenticate and how to make accounts."""

    client: AppClient
    # which brand made each product this helper made: stream() grants those brands' consent
    brands: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        json: Any = None,
        expect: int | None = None,
        **kwargs: Any,
    ) -> tuple[int, Any]:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response = await self.client.request(method, path, json=json, headers=headers, **kwargs)
        body: Any = None
        if response.content_type == "application/json":
            body = await response.json()
        else:
            body = await response.text()
        if expect is not None:
            assert response.status == expect, (method, path, response.status, body)
        return response.status, body

    async def account(self, kind: str, name: str = "someone") -> dict[str, Any]:
        token = None if kind == "viewers" else ADMIN_TOKEN
        _, body = await self.call("POST", f"/api/{kind}", token, {"name": name}, expect=201)
        return dict(body)

    async def product(self, brand: dict[str, Any], **fields: Any) -> dict[str, Any]:
        body = {"title": "Silk scarf", "price": 2900, "currency": "USD", "stock": 10, **fields}
        _, product = await self.call("POST", "/api/products", brand["token"], body, expect=201)
        self.brands[product["id"]] = brand
        return dict(product)

    async def grant(self, brand: dict[str, Any], host: dict[str, Any], **terms: Any) -> dict[str, Any]:
        path = f"/api/brands/me/hosts/{host['id']}"
        status, grant = await self.call("POST", path, brand["token"], terms)
        assert status in (200, 201), (status, grant)
        return dict(grant)

    async def stream(
        self, host: dict[str, Any], products: list[str], title: str = "Show", *, grant: bool = True
    ) -> dict[str, Any]:
        """A stream of `host` showing `products`; their brands grant the host first unless
        `grant` is false (the consent tests)."""
        if grant:
            brands = {self.brands[p]["id"]: self.brands[p] for p in products if p in self.brands}
            for brand in brands.values():
                await self.grant(brand, host)
        body = {"title": title, "products": products}
        _, stream = await self.call("POST", "/api/streams", host["token"], body, expect=201)
        return dict(stream)


@pytest.fixture
async def api(aiohttp_client: MakeClient, settings: Settings) -> Api:
    return Api(await aiohttp_client(create_app(settings)))
