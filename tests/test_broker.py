"""One test suite for every Broker: in-process and Redis behave the same to the hub."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from chat.broker import Broker, Event
from chat.broker_memory import MemoryBroker
from chat.broker_redis import RedisBroker
from tests.conftest import REDIS_URL, redis_for
from tests.redis_cluster import RedisCluster
from tests.redis_server import RedisServer

HISTORY = 5


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Event]] = []
        self.arrived = asyncio.Event()

    def __call__(self, room: str, event: Event) -> None:
        self.events.append((room, event))
        self.arrived.set()

    async def wait_for(self, count: int, timeout: float = 3.0) -> list[Event]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            self.arrived.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except TimeoutError:
                break
        return [e for _, e in self.events]


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    made: Broker = MemoryBroker(HISTORY)
    if request.param != "memory":
        url, cluster = redis_for(request)
        made = RedisBroker(url, history_size=HISTORY, cluster=cluster)
    yield made
    await made.close()


def room() -> str:
    return "str_" + secrets.token_hex(6)


async def test_seqs_are_consecutive_per_room(broker: Broker) -> None:
    a, b = room(), room()
    assert await broker.last_seq(a) == 0
    seqs = [(await broker.publish(a, "chat", {"n": i})).seq for i in range(3)]
    assert seqs == [1, 2, 3]
    assert (await broker.publish(b, "chat", {})).seq == 1
    assert await broker.last_seq(a) == 3


async def test_concurrent_publishes_never_share_a_seq(broker: Broker) -> None:
    a = room()
    events = await asyncio.gather(*(broker.publish(a, "chat", {"n": i}) for i in range(40)))
    assert sorted(e.seq for e in events) == list(range(1, 41))
    history = await broker.history(a, 35)
    assert history is not None
    assert [e.seq for e in history] == [36, 37, 38, 39, 40]
    by_seq = {e.seq: e.data for e in events}
    assert all(by_seq[e.seq] == e.data for e in history)


async def test_subscribers_get_events_in_order_and_only_their_rooms(broker: Broker) -> None:
    recorder = Recorder()
    await broker.start(recorder)
    mine, other = room(), room()
    await broker.subscribe(mine)
    await broker.subscribe(mine)  # idempotent
    for i in range(5):
        await broker.publish(mine, "chat", {"n": i})
        await broker.publish(other, "chat", {"n": i})
    await broker.publish_ephemeral(mine, "likes", {"count": 3, "total": 3})
    events = await recorder.wait_for(6)
    assert {r for r, _ in recorder.events} == {mine}
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 0]
    assert [e.data.get("n") for e in events[:5]] == [0, 1, 2, 3, 4]
    assert events[5].ephemeral and events[5].data == {"count": 3, "total": 3}
    await broker.unsubscribe(mine)
    await broker.publish(mine, "chat", {"n": 99})
    await asyncio.sleep(0.2)
    assert len(recorder.events) == 6


async def test_history_reaches_back_a_bounded_way(broker: Broker) -> None:
    a = room()
    for i in range(8):
        await broker.publish(a, "chat", {"n": i})
    history = await broker.history(a, 3)
    assert history is not None and [e.seq for e in history] == [4, 5, 6, 7, 8]
    assert [e.data["n"] for e in history] == [3, 4, 5, 6, 7]
    assert await broker.history(a, 8) == []
    assert await broker.history(a, 2) is None  # seq 3 is gone: resync
    assert await broker.history(a, 9) is None  # a seq this room never had: resync
    await broker.publish_ephemeral(a, "viewers", {"count": 1})
    assert await broker.last_seq(a) == 8  # ephemeral events take no seq
    assert await broker.history(room(), 0) == []


async def test_ping(broker: Broker) -> None:
    await broker.ping()


async def test_redis_nodes_share_rooms() -> None:
    a, b = RedisBroker(REDIS_URL), RedisBroker(REDIS_URL)
    try:
        seen = Recorder()
        await b.start(seen)
        name = room()
        await b.subscribe(name)
        await a.publish(name, "chat", {"from": "a"})
        events = await seen.wait_for(1)
        assert [(e.seq, e.data) for e in events] == [(1, {"from": "a"})]
    finally:
        await a.close()
        await b.close()


async def test_redis_events_published_while_a_node_first_subscribes_are_not_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A loaded node: its listener's first SSUBSCRIBE lands after the joiner was told the
    # room's seq and someone on another node already spoke.
    a, b = RedisBroker(REDIS_URL), RedisBroker(REDIS_URL)
    real_pubsub = b._redis.pubsub

    def slow_pubsub(**kwargs: Any) -> Any:
        pubsub: Any = real_pubsub(**kwargs)
        subscribe = pubsub.ssubscribe

        async def late(*args: Any, **kw: Any) -> Any:
            await asyncio.sleep(0.3)
            return await subscribe(*args, **kw)

        pubsub.ssubscribe = late
        return pubsub

    monkeypatch.setattr(b._redis, "pubsub", slow_pubsub)
    try:
        seen = Recorder()
        await b.start(seen)
        name = room()
        await b.subscribe(name)
        await a.publish(name, "chat", {"n": 1})
        await a.publish(name, "chat", {"n": 2})
        events = await seen.wait_for(2)
        assert [(e.seq, e.data) for e in events] == [(1, {"n": 1}), (2, {"n": 2})]
    finally:
        await a.close()
        await b.close()


async def test_redis_listener_fills_what_it_missed_while_cut_off(tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()
    publisher, listener = RedisBroker(server.url), RedisBroker(server.url, max_backoff_s=0.2)
    admin = redis.from_url(server.url)
    try:
        seen = Recorder()
        await listener.start(seen)
        name = room()
        await listener.subscribe(name)
        await publisher.publish(name, "chat", {"n": 1})
        await seen.wait_for(1)
        # cut the listener's pub/sub connection; publish while it is away
        await admin.client_kill_filter(_type="pubsub")
        for n in (2, 3, 4):
            await publisher.publish(name, "chat", {"n": n})
        events = await seen.wait_for(4, timeout=5)
        await publisher.publish(name, "chat", {"n": 5})
        events = await seen.wait_for(5, timeout=5)
        assert [e.seq for e in events] == [1, 2, 3, 4, 5]  # each once, in order
        assert [e.data["n"] for e in events] == [1, 2, 3, 4, 5]
    finally:
        await admin.aclose()
        await publisher.close()
        await listener.close()
        server.stop()


async def test_redis_unsubscribe_racing_close_or_a_reconnect_never_raises(tmp_path: Path) -> None:
    # A viewer leaving while the node shuts down, or while pub/sub reconnects, must not
    # surface redis-py's half-closed connection as an error on the leaving socket.
    server = RedisServer(tmp_path).start()
    admin = redis.from_url(server.url)
    try:
        for round in range(12):
            broker = RedisBroker(server.url, max_backoff_s=0.2)
            await broker.start(Recorder())
            rooms = [room() for _ in range(5)]
            for name in rooms:
                await broker.subscribe(name)
            deadline = time.monotonic() + 3
            while not broker.connected and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if round % 2:
                await admin.client_kill_filter(_type="pubsub")
            results = await asyncio.gather(
                broker.close(), *(broker.unsubscribe(name) for name in rooms), return_exceptions=True
            )
            assert [r for r in results if isinstance(r, BaseException)] == []
    finally:
        await admin.aclose()
        server.stop()


async def test_a_cluster_room_whose_slot_moves_to_another_master_keeps_its_events(
    redis_cluster: RedisCluster,
) -> None:
    # An operator reshards (or a replica takes over): the master drops the room's channel, the
    # node's listener asks the cluster where the room lives now, subscribes there and reads
    # back what it missed; publishing follows the MOVED on its own.
    a = RedisBroker(redis_cluster.url, cluster=True)
    b = RedisBroker(redis_cluster.url, cluster=True, max_backoff_s=0.2)
    try:
        seen = Recorder()
        await b.start(seen)
        name = room()
        await b.subscribe(name)
        await a.publish(name, "chat", {"n": 1})
        assert [e.seq for e in await seen.wait_for(1)] == [1]
        channel = f"lc:{{{name}}}:ch"
        elsewhere = next(p for p in redis_cluster.ports if p != redis_cluster.owner_port(channel))
        await asyncio.to_thread(redis_cluster.move_slot, channel, elsewhere)
        for n in (2, 3, 4):
            await a.publish(name, "chat", {"n": n})
        events = await seen.wait_for(4, timeout=15.0)
        assert [(e.seq, e.data) for e in events] == [(n, {"n": n}) for n in (1, 2, 3, 4)]
        history = await a.history(name, 0)  # the room's history moved with it
        assert history is not None and [e.seq for e in history] == [1, 2, 3, 4]
    finally:
        await a.close()
        await b.close()
