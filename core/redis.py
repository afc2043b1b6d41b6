"""The node's Redis client, and one translation of a Redis failure into `503 redis_unavailable`.

Every Redis part of livecart (the room broker and room state, flash-sale stock, the stream
directory) shares the client made here, and raises `RedisUnavailable` when Redis does not
answer, so a client sees the same code whichever part noticed.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import redis.asyncio as redis
from redis.exceptions import RedisError

from core.errors import Unavailable

T = TypeVar("T")

MAX_CONNECTIONS = 64


class RedisUnavailable(Unavailable):
    """Redis does not answer: 503, or an `error` event with this code on a room socket."""

    code = "redis_unavailable"


def connect(url: str) -> redis.Redis:
    """The node's client: a bounded pool where a burst waits for a free connection (rather
    than failing or opening thousands), and short timeouts so a Redis outage answers 503 fast."""
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=5, socket_timeout=5, socket_connect_timeout=2
    )
    return redis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes both


async def answer(pending: Awaitable[T]) -> T:
    """Await one Redis call; a Redis failure becomes RedisUnavailable."""
    try:
        return await pending
    except (RedisError, OSError) as exc:
        raise RedisUnavailable(f"redis does not answer: {exc}") from None
