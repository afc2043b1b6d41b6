"""Redis broker: rooms shared by every node through sharded pub/sub, history in Redis.

Keys of one room share a hash tag (`lc:{<room>}:…`) so a room lives in one cluster
slot and its publish script may touch all of them. Messages are msgpack: the
seq, then `[type, ts, data]`, concatenated (the script prepends the seq it took
without decoding the body).

One pub/sub connection per node. The listener task reconnects with capped
backoff; after a reconnect, or whenever a seq arrives out of line, the room's
missing events are read from history before anything newer is delivered, so
local sockets see every event once and in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import msgpack
import redis.asyncio as redis
from redis.exceptions import RedisError

from chat.broker import HISTORY_SIZE, Event, Listener
from core.logs import log
from core.redis import RedisUnavailable, answer, connect

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
        client: redis.Redis | None = None,
    ) -> None:
        self._owns_client = client is None
        self._redis = client or connect(url)
        self._history_size = history_size
        self._max_backoff_s = max_backoff_s
        self._publish = self._redis.register_script(_PUBLISH)
        self._history = self._redis.register_script(_HISTORY)
        self._listener: Listener | None = None
        self._rooms: dict[str, int] = {}  # subscribed room → last durable seq delivered
        self._channels: dict[str, str] = {}  # channel → room
        self._filling: dict[str, list[Event]] = {}  # rooms waiting on history: held events
        self._pubsub: Any = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._fills: set[asyncio.Task[None]] = set()
        self._closing = False
        self.connected = False

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self, listener: Listener) -> None:
        self._listener = listener
        self._task = asyncio.create_task(self._listen(), name="redis-broker-listener")

    async def close(self) -> None:
        self._closing = True
        tasks = [t for t in (self._task, *self._fills) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close_pubsub()
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
        subscribed = await self._tell_pubsub("ssubscribe", channel)
        self._wake.set()
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
        await self._tell_pubsub("sunsubscribe", channel)

    async def _tell_pubsub(self, command: str, channel: str) -> bool:
        """(Un)subscribe on the live pub/sub connection; False when there is none.

        The connection can be closed or replaced while the command is on its way (a
        reconnect, close()); redis-py then fails in ways that are not RedisError. That is
        harmless: the listener subscribes exactly ``self._channels`` when it reconnects.
        """
        pubsub = self._pubsub
        if pubsub is None or not self.connected or self._closing:
            return False
        try:
            await getattr(pubsub, command)(channel)
        except (RedisError, OSError):
            return False
        except Exception:
            if pubsub is self._pubsub and not self._closing:
                raise
            return False
        return True

    # -- the listener ------------------------------------------------------------------------
    async def _listen(self) -> None:
        backoff = 0.1
        first = True
        while True:
            try:
                self._wake.clear()
                if not self._channels:
                    await self._close_pubsub()
                    self.connected = False
                    await self._wake.wait()
                    continue
                await self._close_pubsub()
                self._pubsub = self._redis.pubsub()
                await self._pubsub.ssubscribe(*self._channels)
                self.connected = True
                if not first:
                    log(logger, logging.INFO, "redis pub/sub reconnected", rooms=len(self._rooms))
                # What was published before the subscription took effect (a reconnect, or a
                # room whose joiners were told its seq while this SSUBSCRIBE was on its way)
                # comes back from history; the fill holds live events until it is done.
                for room in list(self._rooms):
                    self._start_fill(room)
                first = False
                backoff = 0.1
                await self._read_messages()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self.connected or first:
                    log(logger, logging.WARNING, "redis pub/sub lost; reconnecting", error=str(exc))
                first = False
                self.connected = False
                await self._close_pubsub()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
            except Exception:
                logger.exception("redis listener failed; restarting it")
                self.connected = False
                await self._close_pubsub()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)

    async def _read_messages(self) -> None:
        pubsub = self._pubsub
        while True:
            if not self._channels:
                return  # nothing subscribed: the outer loop waits for a room
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None or message["type"] != "smessage":
                continue
            room = self._channels.get(message["channel"].decode())
            if room is None:
                continue
            try:
                event = _decode(message["data"])
            except Exception:
                log(logger, logging.WARNING, "undecodable broker message", room=room)
                continue
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

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
