"""One test suite for RoomState: in-process and Redis agree on presence, likes, mutes, bans."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from chat.roomstate import MemoryRoomState, RoomState
from chat.roomstate_redis import RedisRoomState
from core.redis import connect
from tests.conftest import redis_for


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[RoomState]:
    if request.param == "memory":
        yield MemoryRoomState()
        return
    url, cluster = redis_for(request)
    client = connect(url, cluster=cluster)
    yield RedisRoomState(client)
    await client.aclose()


def room() -> str:
    return "str_" + secrets.token_hex(6)


async def test_presence_sums_nodes_and_forgets_dead_ones(state: RoomState) -> None:
    r = room()
    assert await state.report_presence(r, "node-a", 3, ttl=0.3) == 3
    assert await state.report_presence(r, "node-b", 4, ttl=5) == 7
    assert await state.report_presence(r, "node-a", 2, ttl=0.3) == 6
    assert await state.viewers(r) == 6
    await asyncio.sleep(0.45)  # node-a stopped reporting: it no longer counts
    assert await state.viewers(r) == 4
    assert await state.viewers_peak(r) == 7
    assert await state.viewers(room()) == 0


async def test_unique_viewers_and_likes(state: RoomState) -> None:
    r = room()
    await state.add_unique_viewers(r, ["v1", "v2"])
    await state.add_unique_viewers(r, ["v1", "anon:n:7"])
    await state.add_unique_viewers(r, [])
    assert await state.unique_viewers(r) == 3
    assert await state.add_likes(r, 5) == 5
    assert await state.add_likes(r, 2) == 7


async def test_unique_viewers_take_bounded_memory_and_count_within_two_percent(state: RoomState) -> None:
    r = room()
    viewers = [f"anon:{secrets.token_hex(8)}" for _ in range(20_000)]
    for start in range(0, len(viewers), 1000):  # as the presence ticks bring them
        await state.add_unique_viewers(r, viewers[start : start + 1000])
    counted = await state.unique_viewers(r)
    assert abs(counted - 20_000) <= 400, counted
    await state.add_unique_viewers(r, viewers[:5000])  # seen again: not counted again
    assert await state.unique_viewers(r) == counted
    if isinstance(state, RedisRoomState):
        size = await state._redis.memory_usage(f"lc:{{{r}}}:uniques")  # on its own Redis or cluster
        assert size is not None and size < 16 * 1024  # a set of 20,000 ids took ~1 MB


async def test_mutes_bans_and_blocked_words(state: RoomState) -> None:
    r = room()
    assert await state.standing(r, "u1") == (False, 0.0)
    await state.mute(r, "u1", 1234.5)
    await state.ban(r, "u2")
    assert await state.standing(r, "u1") == (False, 1234.5)
    assert await state.standing(r, "u2") == (True, 0.0)
    assert await state.standing(room(), "u2") == (False, 0.0)  # per room
    await state.set_blocked_words(r, ["cheap", "fake"])
    assert await state.blocked_words(r) == frozenset({"cheap", "fake"})
    await state.set_blocked_words(r, [])
    assert await state.blocked_words(r) == frozenset()
