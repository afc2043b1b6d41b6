"""Redis broker: rooms shared by every node through sharded pub/sub, history in Redis.

Keys of one room share a hash tag (`lc:{<room>}:…`) so a room lives in one cluster
slot and its publish script may touch all of them. Messages are msgpack: the
seq, then `[type, ts, data]`, concatenated (the script prepends the seq it took
without decoding the body).

One pub/sub connection per Redis server the node's rooms live on: a single Redis, or each
master of a Redis Cluster that serves a subscribed room's slot (chat/broker_shards.py). Each
has a listener task that reconnects with capped backoff, so a master that is down stops only
its own rooms; after a reconnect, a slot that moved, or whenever a seq arrives out of line, the
room's missing events are read from history before anything newer is delivered, so local
sockets see every event once and in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

import msgpack
import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from chat.broker import HISTORY_SIZE, Event, Listener
from chat.broker_shards import CLOSE_S, Shard
from core.logs import log
from core.redis import Client, RedisUnavailable, Script, answer, connect

logger = logging.getLogger("livecart.broker")

ROOM_TTL_S = 7 * 24 * 3600  # an idle room's keys go away after a week

# KEYS: seq, history. ARGV: body, history size, ttl, channel.
# INCR, LPUSH+LTRIM and SPUBLISH in one script: the seq, the history and the
# delivery can never disagree.
_PUBLISH = """
local seq = redis.call('INCR', KEYS[1])
local message = cmsgpack.pack(seq) .. ARGV[1]
redis.call('LPUSH', KEYS[2], message)
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('SPUBLISH', ARGV[4], message)
return seq
"""

# KEYS: seq, history. ARGV: since. Returns {last seq, messages newest first} or
# {last seq, false} when history no longer reaches since + 1.
_HISTORY = """
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local since = tonumber(ARGV[1])
if since > last then return {last, false} end
local wanted = last - since
if wanted == 0 then return {last, {}} end
if wanted > redis.call('LLEN', KEYS[2]) then return {last, false} end
return {last, redis.call('LRANGE', KEYS[2], 0, wanted - 1)}
"""

_EPHEMERAL_SEQ = msgpack.packb(0)


def _keys(room: str) -> tuple[str, str, str]:
    tag = f"lc:{{{room}}}"
    return f"{tag}:seq", f"{tag}:hist", f"{tag}:ch"


def _decode(message: bytes) -> Event:
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(message)
    seq = unpacker.unpack()
    type_, ts, data = unpacker.unpack()
    return Event(seq, type_, ts, data)


class RedisBroker:
    def __init__(
        self,
        url: str,
        *,
        history_size: int = HISTORY_SIZE,
        max_backoff_s: float = 5.0,
        client: Client | None = None,
        cluster: bool = False,
    ) -> None:
        self._owns_client = client is None
        self._redis = client or connect(url, cluster=cluster)
        self._cluster = self._redis if isinstance(self._redis, RedisCluster) else None
        self._history_size = history_size
        self._max_backoff_s = max_backoff_s
        self._publish = Script(self._redis, _PUBLISH)
        self._history = Script(self._redis, _HISTORY)
        self._listener: Listener | None = None
        self._rooms: dict[str, int] = {}  # subscribed room → last durable seq delivered
        self._channels: dict[str, str] = {}  # channel → room
        self._filling: dict[str, list[Event]] = {}  # rooms waiting on history: held events
        self._shards: dict[str, Shard] = {}  # server name ("" for a single Redis) → its shard
        self._where: dict[str, Shard] = {}  # channel → the shard it is subscribed on
        self._fills: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def connected(self) -> bool:
        """Whether every room this node follows has its pub/sub connection up."""
        return all(s.connected for s in self._shards.values() if s.channels)

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self, listener: Listener) -> None:
        self._listener = listener

    async def close(self) -> None:
        self._closing = True
        for shard in list(self._shards.values()):  # first: a listener may start fills
            await shard.close()
        for task in list(self._fills):
            task.cancel()
        if self._fills:
            await asyncio.wait(list(self._fills), timeout=CLOSE_S)
        if self._owns_client:
            await self._redis.aclose()

    async def ping(self) -> None:
        await answer(self._redis.ping())

    # -- publishing ----------------------------------------------------------------------
    async def publish(self, room: str, type: str, data: dict[str, Any]) -> Event:
        ts = time.time()
        seq_key, hist_key, channel = _keys(room)
        body = msgpack.packb([type, ts, data])
        seq = await answer(
            self._publish(keys=[seq_key, hist_key], args=[body, self._history_size, ROOM_TTL_S, channel])
        )
        return Event(int(seq), type, ts, data)

    async def publish_ephemeral(self, room: str, type: str, data: dict[str, Any]) -> None:
        message = _EPHEMERAL_SEQ + msgpack.packb([type, time.time(), data])
        await answer(self._redis.spublish(_keys(room)[2], message))

    # -- history -----------------------------------------------------------------------------
    async def last_seq(self, room: str) -> int:
        return int(await answer(self._redis.get(_keys(room)[0])) or 0)

    async def history(self, room: str, since: int) -> list[Event] | None:
        seq_key, hist_key, _ = _keys(room)
        _, messages = await answer(self._history(keys=[seq_key, hist_key], args=[since]))
        if messages is None:
            return None
        return [_decode(m) for m in reversed(messages)]

    # -- subscriptions -------------------------------------------------------------------------
    async def subscribe(self, room: str) -> None:
        if room in self._rooms:
            return
        channel = _keys(room)[2]
        self._channels[channel] = room
        # Events up to the seq read *after* subscribing reach joiners through history.
        self._rooms[room] = -1
        try:
            shard = await self._shard_for(channel)
        except RedisUnavailable:
            shard = self._shard("")  # no map of the cluster yet: parked until one is read
        shard.channels.add(channel)
        self._where[channel] = shard
        subscribed = await shard.tell("ssubscribe", channel)
        shard.wake()
        try:
            self._rooms[room] = max(self._rooms.get(room, -1), await self.last_seq(room))
        except RedisUnavailable:
            pass  # -1: the first event that arrives sets the mark
        if subscribed and room in self._rooms and room not in self._filling:
            # The SSUBSCRIBE and the seq read went on different connections: an event
            # published between the two is read back rather than trusted to ordering.
            self._start_fill(room)

    async def unsubscribe(self, room: str) -> None:
        if self._rooms.pop(room, None) is None:
            return
        channel = _keys(room)[2]
        self._channels.pop(channel, None)
        self._filling.pop(room, None)
        shard = self._where.pop(channel, None)
        if shard is not None:
            shard.channels.discard(channel)
            await shard.tell("sunsubscribe", channel)

    # -- where each room's channel lives ------------------------------------------------------
    def _shard(self, name: str) -> Shard:
        shard = self._shards.get(name)
        if shard is None:
            if self._cluster is None or not name:
                shard = Shard(name, self._redis.pubsub, self, max_backoff_s=self._max_backoff_s)
            else:
                node = self._cluster.get_node(node_name=name)
                assert node is not None, name
                pool = redis.ConnectionPool(connection_class=node.connection_class, **node.connection_kwargs)
                client = redis.Redis(connection_pool=pool)
                shard = Shard(name, client.pubsub, self, max_backoff_s=self._max_backoff_s, client=client)
            self._shards[name] = shard
            shard.start()
        return shard

    async def _shard_for(self, channel: str) -> Shard:
        """The shard of the server that serves `channel`'s slot now."""
        if self._cluster is None:
            return self._shard("")
        if not self._cluster.nodes_manager.slots_cache:
            await answer(self._cluster.initialize())
        try:
            node = self._cluster.get_node_from_key(channel)
        except RedisError as exc:
            raise RedisUnavailable(f"redis does not answer: {exc}") from None
        assert node is not None
        return self._shard(node.name)

    async def reroute(self, shard: Shard) -> None:
        """A shard reconnects: its rooms whose slot another master serves now (a failover, a
        slot that moved) go to that master's shard, which subscribes and reads them back."""
        if self._cluster is None:
            return
        if shard.name or not self._cluster.nodes_manager.slots_cache:
            with contextlib.suppress(RedisError, OSError):
                await self._cluster.nodes_manager.initialize()  # a fresh map of the slots
        for channel in list(shard.channels):
            try:
                target = await self._shard_for(channel)
            except RedisUnavailable:
                continue
            if target is shard:
                continue
            shard.channels.discard(channel)
            target.channels.add(channel)
            self._where[channel] = target
            if await target.tell("ssubscribe", channel):
                self.subscribed([channel])
            target.wake()

    # -- what the shards hear -----------------------------------------------------------------
    def subscribed(self, channels: Iterable[str]) -> None:
        for channel in channels:
            room = self._channels.get(channel)
            if room is not None and room in self._rooms:
                self._start_fill(room)

    def arrive(self, channel: str, message: bytes) -> None:
        room = self._channels.get(channel)
        if room is None:
            return
        try:
            event = _decode(message)
        except Exception:
            log(logger, logging.WARNING, "undecodable broker message", room=room)
            return
        self._arrive(room, event)

    def _arrive(self, room: str, event: Event) -> None:
        held = self._filling.get(room)
        if held is not None:
            held.append(event)
            return
        if event.ephemeral:
            self._emit(room, event)
            return
        last = self._rooms.get(room)
        if last is None:
            return
        if last == -1 or event.seq == last + 1:
            self._rooms[room] = event.seq
            self._emit(room, event)
        elif event.seq > last + 1:
            # Something was missed (a reconnect, a dropped message): read it back first.
            self._filling[room] = [event]
            self._start_fill(room)
        # event.seq <= last: already delivered

    def _start_fill(self, room: str) -> None:
        if self._closing:
            return
        self._filling.setdefault(room, [])
        task = asyncio.create_task(self._fill(room), name=f"redis-broker-fill-{room}")
        self._fills.add(task)
        task.add_done_callback(self._fills.discard)

    async def _fill(self, room: str) -> None:
        last = self._rooms.get(room, -1)
        missed: list[Event] | None = []
        if last >= 0:
            try:
                missed = await self.history(room, last)
            except RedisUnavailable:
                missed = []  # the next reconnect tries again
        held = self._filling.pop(room, [])
        if room not in self._rooms:
            return
        if missed is None:
            # Too far behind for history: local sockets must resync, then go on from here.
            self._emit(room, Event(0, "resync", time.time(), {"seq": last}))
            durable = [e.seq for e in held if not e.ephemeral]
            self._rooms[room] = min(durable) - 1 if durable else last
            missed = []
        for event in [*missed, *held]:
            if event.ephemeral:
                self._emit(room, event)
            elif event.seq > self._rooms.get(room, -1):
                self._rooms[room] = event.seq
                self._emit(room, event)

    def _emit(self, room: str, event: Event) -> None:
        if self._listener is not None:
            try:
                self._listener(room, event)
            except Exception:
                logger.exception("room listener failed", extra={"fields": {"room": room}})
