"""Two livecart nodes on a three-master Redis Cluster, as an operator would run them
(`LIVECART_REDIS_CLUSTER=1`, `redis_url` one master): rooms spread over every master; chat,
pins, flash sales and buying work across the nodes as on one Redis; a master stopped mid-show
stops only the rooms and sales it serves (503, said in words), and they come back with it."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from config.settings import Settings
from server.app import create_app
from tests.conftest import ADMIN_TOKEN, MakeClient
from tests.procs import ServerProcess, cluster
from tests.redis_cluster import RedisCluster
from tests.test_cluster import _events

pytestmark = pytest.mark.timeout(180)


@dataclass
class Room:
    stream: dict[str, Any]
    master: int  # the port of the master serving the room
    sale: dict[str, Any] | None = None
    sale_master: int = 0


@pytest.fixture
def on_cluster(tmp_path: Path) -> Iterator[tuple[RedisCluster, list[ServerProcess]]]:
    redis = RedisCluster(tmp_path).start()
    env = {
        "LIVECART_DATA_DIR": str(tmp_path / "shared-data"),
        "LIVECART_ADMIN_TOKEN": ADMIN_TOKEN,
        "LIVECART_REDIS_URL": redis.url,
        "LIVECART_REDIS_CLUSTER": "1",
        "LIVECART_ICE_ADDRESSES": "127.0.0.1",
        "LIVECART_LOG_LEVEL": "warning",
    }
    try:
        with cluster(tmp_path, env) as nodes:
            yield redis, nodes
    finally:
        redis.stop()


class Shop:
    def __init__(self, http: aiohttp.ClientSession, nodes: list[ServerProcess]) -> None:
        self.http, self.one, self.two = http, nodes[0].url, nodes[1].url

    async def call(
        self, method: str, url: str, token: str | None = None, body: Any = None, **headers: str
    ) -> tuple[int, Any]:
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with self.http.request(method, url, json=body, headers=headers) as response:
            return response.status, await response.json(content_type=None)

    async def made(self, url: str, token: str | None, body: Any) -> dict[str, Any]:
        status, made = await self.call("POST", url, token, body)
        assert status in (200, 201), (url, status, made)
        return dict(made)


@contextlib.asynccontextmanager
async def show_on_every_master(
    redis: RedisCluster, nodes: list[ServerProcess]
) -> AsyncIterator[tuple[Shop, dict[str, Any], dict[str, Any], list[Room]]]:
    """A brand's product, its host, and one show per master (shows are made until every master
    serves one's room, at most 60): the rooms spread over the whole cluster."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        shop = Shop(http, nodes)
        brand = await shop.made(f"{shop.one}/api/brands", ADMIN_TOKEN, {"name": "Silk & Co"})
        host = await shop.made(f"{shop.one}/api/hosts", ADMIN_TOKEN, {"name": "Lin"})
        await shop.made(f"{shop.one}/api/brands/me/hosts/{host['id']}", brand["token"], {})
        body = {"title": "Silk scarf", "price": 2900, "currency": "USD", "stock": 500}
        product = await shop.made(f"{shop.one}/api/products", brand["token"], body)
        rooms: dict[int, Room] = {}
        for _ in range(60):
            body = {"title": "Show", "products": [product["id"]]}
            stream = await shop.made(f"{shop.one}/api/streams", host["token"], body)
            master = redis.owner_port(f"lc:{{{stream['id']}}}:ch")
            rooms.setdefault(master, Room(stream, master))
            if len(rooms) == len(redis.nodes):
                break
        assert sorted(rooms) == sorted(redis.ports), "the rooms spread over every master"
        yield shop, host, product, list(rooms.values())


async def sockets(
    shop: Shop, room: Room, host: dict[str, Any], viewer: dict[str, Any]
) -> tuple[aiohttp.ClientWebSocketResponse, aiohttp.ClientWebSocketResponse]:
    """The host's socket on node one and a viewer's on node two, both greeted."""
    path = f"/api/streams/{room.stream['id']}/ws"
    on_one = await shop.http.ws_connect(f"{shop.one}{path}?token={host['token']}")
    on_two = await shop.http.ws_connect(f"{shop.two}{path}?token={viewer['token']}")
    await _events(on_one, "hello")
    await _events(on_two, "hello")
    return on_one, on_two


async def chat_arrives(
    sender: aiohttp.ClientWebSocketResponse, receiver: aiohttp.ClientWebSocketResponse, timeout: float = 10.0
) -> None:
    text = "hi " + secrets.token_hex(4)
    await sender.send_json({"type": "chat", "text": text})
    deadline = time.monotonic() + timeout
    while (await _events(receiver, "chat", timeout=max(0.1, deadline - time.monotonic())))["data"][
        "text"
    ] != text:
        pass


async def start_sale(
    shop: Shop, redis: RedisCluster, room: Room, host: dict[str, Any], product: dict[str, Any]
) -> None:
    body = {
        "product_id": product["id"],
        "price": 990,
        "quantity": 20,
        "duration_s": 600,
        "per_viewer_limit": 5,
    }
    room.sale = await shop.made(f"{shop.two}/api/streams/{room.stream['id']}/sales", host["token"], body)
    room.sale_master = redis.owner_port(f"lc:{{sale:{room.sale['id']}}}:sale")


async def buy(shop: Shop, room: Room, product: dict[str, Any], viewer: dict[str, Any]) -> tuple[int, Any]:
    body = {"stream_id": room.stream["id"], "product_id": product["id"], "quantity": 1}
    return await shop.call(
        "POST", f"{shop.two}/api/orders", viewer["token"], body, **{"Idempotency-Key": secrets.token_hex(8)}
    )


async def test_two_nodes_on_a_cluster_chat_pin_sell_and_buy_in_rooms_on_every_master(
    on_cluster: tuple[RedisCluster, list[ServerProcess]],
) -> None:
    redis, nodes = on_cluster
    async with show_on_every_master(redis, nodes) as (shop, host, product, rooms):
        status, ready = await shop.call("GET", f"{shop.two}/readyz")
        assert status == 200, ready
        viewer = await shop.made(f"{shop.two}/api/viewers", None, {"name": "Ann"})
        for room in rooms:
            on_one, on_two = await sockets(shop, room, host, viewer)
            await chat_arrives(on_one, on_two)
            await chat_arrives(on_two, on_one)
            pin = f"{shop.one}/api/streams/{room.stream['id']}/pin"
            assert (await shop.call("POST", pin, host["token"], {"product_id": product["id"]}))[0] == 200
            assert (await _events(on_two, "pin"))["data"]["product"]["id"] == product["id"]
            await start_sale(shop, redis, room, host, product)
            assert room.sale is not None
            assert (await _events(on_one, "sale"))["data"]["id"] == room.sale["id"]
            status, order = await buy(shop, room, product, viewer)
            assert status == 201 and order["sale_id"] == room.sale["id"], order
            await on_one.close()
            await on_two.close()
    for node in nodes:
        assert node.stop() == 0


async def test_a_stopped_master_stops_only_its_rooms_and_sales_until_it_is_back(
    on_cluster: tuple[RedisCluster, list[ServerProcess]],
) -> None:
    redis, nodes = on_cluster
    async with show_on_every_master(redis, nodes) as (shop, host, product, rooms):
        viewer = await shop.made(f"{shop.two}/api/viewers", None, {"name": "Ann"})
        for room in rooms:
            await start_sale(shop, redis, room, host, product)
        open_sockets = [await sockets(shop, room, host, viewer) for room in rooms]
        down = redis.nodes[1]  # not the seed the nodes were given
        down.stop()  # by its PID
        up_rooms = [(r, s) for r, s in zip(rooms, open_sockets, strict=True) if r.master != down.port]
        dark = next((r, s) for r, s in zip(rooms, open_sockets, strict=True) if r.master == down.port)
        assert len(up_rooms) == 2

        # the other masters' rooms and sales keep working, across the nodes
        for room, (on_one, on_two) in up_rooms:
            await chat_arrives(on_one, on_two)
            if room.sale_master != down.port:
                status, order = await buy(shop, room, product, viewer)
                assert status == 201, order
        # the stopped master's room and sales answer 503 in words
        room, (on_one, _) = dark
        await on_one.send_json({"type": "chat", "text": "into the void"})
        assert (await _events(on_one, "error"))["data"]["code"] == "redis_unavailable"
        for room in rooms:
            if room.sale_master == down.port:
                status, error = await buy(shop, room, product, viewer)
                assert status == 503 and error["error"]["code"] == "redis_unavailable", error
        status, ready = await shop.call("GET", f"{shop.one}/readyz")
        assert status == 503 and "redis" in str(ready), ready

        # the master is back: its room and sales work again, with nothing to restart
        down.start()
        redis.wait_ok()
        room, (on_one, on_two) = dark
        deadline = time.monotonic() + 30
        while True:
            try:
                await chat_arrives(on_one, on_two, timeout=2.0)
                break
            except TimeoutError:
                assert time.monotonic() < deadline, "the room on the restarted master came back"
        for room in rooms:
            status, order = await buy(shop, room, product, viewer)
            assert status == 201, order
        assert (await shop.call("GET", f"{shop.one}/readyz"))[0] == 200
        for on_one, on_two in open_sockets:
            await on_one.close()
            await on_two.close()
    for node in nodes:
        assert node.stop() == 0


async def test_a_cluster_node_given_as_a_single_redis_is_not_ready(
    aiohttp_client: MakeClient, tmp_path: Path, redis_cluster: RedisCluster
) -> None:
    # What an operator tried: the cluster's address without `redis_cluster`. Every sale would
    # have failed on MOVED while /readyz said ready; now readiness says what to set.
    for cluster_mode, expected in ((False, 503), (True, 200)):
        settings = Settings(
            data_dir=tmp_path,
            database_url=f"sqlite:///{tmp_path / 'n.db'}",
            admin_token=ADMIN_TOKEN,
            redis_url=redis_cluster.url,
            redis_cluster=cluster_mode,
        )
        client = await aiohttp_client(create_app(settings))
        response = await client.get("/readyz")
        body = await response.json()
        assert response.status == expected, body
        if expected == 503:
            assert "redis_cluster" in body["error"]["message"] and body["checks"]["database"] == "ok"
        await client.close()
