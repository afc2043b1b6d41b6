"""The node's Redis client, and one translation of a Redis failure into `503 redis_unavailable`.

Every Redis part of livecart (the room broker and room state, flash-sale stock, the stream
directory) shares the client made here, and raises `RedisUnavailable` when Redis does not
answer, so a client sees the same code whichever part noticed.

With `redis_cluster` the client is redis-py's cluster client: it follows `MOVED` and `ASK`
itself, and each key goes to the master serving its slot. Every key livecart writes carries
a hash tag (a room's, a sale's, a stream's), so each script and pipeline touches one slot.
A master that is down fails the calls for its slots only.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisError

from core.errors import Unavailable

T = TypeVar("T")

MAX_CONNECTIONS = 64  # per Redis server (per master, on a cluster)
SLOTS = 16384

# Either client: both take the same commands and scripts for keys of one slot.
Client = redis.Redis | RedisCluster


class RedisUnavailable(Unavailable):
    """Redis does not answer: 503, or an `error` event with this code on a room socket."""

    code = "redis_unavailable"


class _WaitingCluster(RedisCluster):
    """redis-py's cluster client refuses a call when a node's pool is full; livecart's bursts
    (a rush, a room's fan-out) wait for a free connection instead, as on a single Redis."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._free = asyncio.Semaphore(MAX_CONNECTIONS)
        self._mapped = asyncio.Lock()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self._initialize:
            # The cluster's map is read once, before any command goes out: commands racing the
            # first map read on new connections break redis-py's connections (seen with 8.1).
            async with self._mapped:
                if self._initialize:
                    await self.initialize()
        async with self._free:
            return await super().execute_command(*args, **kwargs)


def connect(url: str, *, cluster: bool = False) -> Client:
    """The node's client: a bounded pool where a burst waits for a free connection (rather
    than failing or opening thousands), and short timeouts so a Redis outage answers 503 fast.
    With `cluster`, `url` is any one node of a Redis Cluster: the others are found from it."""
    if cluster:
        return _WaitingCluster.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            socket_timeout=5,
            socket_connect_timeout=2,
            require_full_coverage=False,  # a master that is down fails its own slots only
        )
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=5, socket_timeout=5, socket_connect_timeout=2
    )
    return redis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes both


class Script:
    """A Lua script run by its SHA (EVALSHA), sent whole (EVAL) to the server that answers
    NOSCRIPT: one that restarted or just took over. redis-py's own scripts load a missing script
    on every master of a cluster first, so one master that is down would fail every script."""

    def __init__(self, client: Client, source: str) -> None:
        self._client = client
        self._source = source
        self._sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, keys: Sequence[str] = (), args: Sequence[Any] = ()) -> Any:
        try:
            return await self._client.evalsha(self._sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self._client.eval(self._source, len(keys), *keys, *args)


async def answer(pending: Awaitable[T]) -> T:
    """Await one Redis call; a Redis failure becomes RedisUnavailable."""
    try:
        return await pending
    except (RedisError, OSError) as exc:
        raise RedisUnavailable(f"redis does not answer: {exc}") from None


async def check_ready(client: Client) -> None:
    """Whether the node can use Redis as it is configured: every slot of a cluster served by a
    master that answers; a single Redis that answers and is not a cluster node (whose `MOVED`
    answers a plain client could not follow: set `redis_cluster`)."""
    if isinstance(client, RedisCluster):
        infos = await answer(client.cluster_info(target_nodes=RedisCluster.ALL_NODES))
        for node, info in _per_node(infos).items():
            if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_ok", 0)) != SLOTS:
                raise RedisUnavailable(
                    f"redis cluster not ready at {node}: state {info.get('cluster_state')},"
                    f" {info.get('cluster_slots_ok')} of {SLOTS} slots served"
                )
        return
    info = await answer(client.info("cluster"))
    if int(info.get("cluster_enabled", 0)):
        raise RedisUnavailable(
            "redis_url is a node of a Redis Cluster: set redis_cluster (LIVECART_REDIS_CLUSTER=1)"
        )


def _per_node(infos: Any) -> dict[str, dict[str, Any]]:
    """CLUSTER INFO from every node, as {node: {field: value}} whatever shape redis-py gave."""
    if isinstance(infos, dict) and "cluster_state" in infos:
        return {"": infos}
    return {str(node): dict(info) for node, info in dict(infos).items()}
