"""Several nodes working as one through Redis, and one node riding out a Redis outage."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chat.hub import HubSettings
from config.settings import Settings
from server.app import create_app
from tests.conftest import ADMIN_TOKEN, Api, MakeClient
from tests.procs import ServerProcess, host_and_stream
from tests.redis_server import RedisServer

_unread: dict[int, list[dict[str, Any]]] = {}  # events of a batch not yet looked at, per socket


async def _events(ws: aiohttp.ClientWebSocketResponse, type_: str, timeout: float = 10.0) -> dict[str, Any]:
    """The next event of `type_` on the socket, skipping others; batches are taken apart."""
    unread = _unread.setdefault(id(ws), [])
    deadline = time.monotonic() + timeout
    while True:
        while unread:
            event = unread.pop(0)
            if event["type"] == type_:
                return event
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {type_} event within {timeout}s")
        message = await ws.receive(left)
        if message.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"socket closed: {message.type} {ws.close_code}")
        data = message.json()
        unread.extend(data if isinstance(data, list) else [data])


async def test_two_processes_share_one_room(two_nodes: list[ServerProcess]) -> None:
    one, two = two_nodes
    async with aiohttp.ClientSession() as http:
        host, stream = await host_and_stream(http, one.url, ADMIN_TOKEN)
        async with http.post(f"{two.url}/api/viewers", json={"name": "Lin"}) as r:
            viewer = await r.json()
        path = f"/api/streams/{stream['id']}/ws"
        async with (
            http.ws_connect(f"{one.url}{path}?token={host['token']}") as on_one,
            http.ws_connect(f"{two.url}{path}?token={viewer['token']}") as on_two,
        ):
            await _events(on_one, "hello")
            await _events(on_two, "hello")
            await on_one.send_json({"type": "chat", "text": "hello from node one"})
            event = await _events(on_two, "chat")
            assert event["data"]["text"] == "hello from node one" and event["seq"] == 1
            await on_two.send_json({"type": "chat", "text": "and back from node two"})
            event = await _events(on_one, "chat")
            while event["data"]["text"] != "and back from node two":
                event = await _events(on_one, "chat")
            assert event["seq"] == 2
            # the viewer count covers both nodes
            count = (await _events(on_one, "viewers"))["data"]["count"]
            while count != 2:
                count = (await _events(on_one, "viewers"))["data"]["count"]
            # a pin made through node two reaches the socket on node one
            # (no products in this show, so use the state change instead)
            async with http.post(
                f"{two.url}/api/streams/{stream['id']}/end",
                headers={"Authorization": f"Bearer {host['token']}"},
            ) as r:
                assert r.status == 200
            assert (await _events(on_one, "stream"))["data"] == {"state": "ended"}
    for node in two_nodes:
        assert node.stop() == 0


@pytest.fixture
async def node(aiohttp_client: MakeClient, tmp_path: Path, redis_server: RedisServer) -> AsyncIterator[Api]:
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'n.db'}",
        admin_token=ADMIN_TOKEN,
        redis_url=redis_server.url,
    )
    fast = HubSettings(presence_interval_s=0.2, likes_interval_s=0.05)
    yield Api(await aiohttp_client(create_app(settings, hub_settings=fast)))


async def test_redis_outage_node_stays_up_and_recovers(node: Api, redis_server: RedisServer) -> None:
    host = await node.account("hosts")
    stream = await node.stream(host, [])
    path = f"/api/streams/{stream['id']}/ws"
    staying = await node.client.ws_connect(f"{path}?token={host['token']}")
    leaving = await node.client.ws_connect(path)
    await _events(staying, "hello")
    await _events(leaving, "hello")
    for i in range(3):
        await staying.send_json({"type": "chat", "text": f"before {i}"})
    last_seen = 0
    for _ in range(3):
        last_seen = (await _events(leaving, "chat"))["seq"]
    assert last_seen == 3
    await leaving.close()

    redis_server.stop()
    status, body = await node.call("GET", "/readyz")
    assert status == 503
    assert "redis" in body["error"]["message"] and body["checks"]["redis"] != "ok"
    assert body["checks"]["database"] == "ok"
    await node.call("GET", "/healthz", expect=200)
    await node.call("GET", f"/api/streams/{stream['id']}", expect=200)  # the API still serves
    await staying.send_json({"type": "chat", "text": "into the void"})
    error = await _events(staying, "error")
    assert error["data"]["code"] == "redis_unavailable"
    # a new viewer of a room this node already carries still gets in and can watch...
    joined = await node.client.ws_connect(path)
    assert (await _events(joined, "hello"))["data"]["seq"] == 3
    await joined.close()
    # ...while a room the node has never subscribed to needs Redis: told why, and to come back
    other = await node.stream(host, [], title="Other")
    refused = await node.client.ws_connect(f"/api/streams/{other['id']}/ws")
    first = await refused.receive_json()
    assert first["type"] == "error" and first["data"]["code"] == "redis_unavailable"
    assert (await refused.receive()).type == aiohttp.WSMsgType.CLOSE and refused.close_code == 1013

    redis_server.start()
    deadline = time.monotonic() + 15
    while (await node.call("GET", "/readyz"))[0] != 200:
        assert time.monotonic() < deadline, "never ready again"
        await asyncio.sleep(0.1)
    # the socket that stayed is live again once the listener has reconnected
    deadline = time.monotonic() + 15
    while True:
        await staying.send_json({"type": "chat", "text": "after"})
        try:
            event = await _events(staying, "chat", timeout=1.0)
            break
        except TimeoutError:
            assert time.monotonic() < deadline, "the listener did not come back"
    assert event["data"]["text"] == "after" and event["seq"] > 3
    # and a viewer coming back with since= gets exactly what it missed
    back = await node.client.ws_connect(f"{path}?since={last_seen}")
    hello = await _events(back, "hello")
    missed = [await _events(back, "chat") for _ in range(hello["data"]["seq"] - last_seen)]
    assert [e["seq"] for e in missed] == list(range(last_seen + 1, hello["data"]["seq"] + 1))
    assert all(e["data"]["text"] == "after" for e in missed)
    await back.close()
    await staying.close()
