"""Fan-out on one node: a room's local sockets and the frames they share.

Per event, the work is done once per node: the event is serialized once (JSON,
and msgpack only if a socket asked for it), wrapped in a WebSocket frame once,
and the same bytes are written to every local socket's transport. Per socket
there is no task, timer, queue object or re-encode: only a check of the
transport's write buffer, which *is* the bounded send queue — a socket whose
buffer is over the cap is a consumer that cannot keep up, and it is dropped.

Busy rooms batch: events that arrive within `batch_window_s` of a flush's start are held
and sent together as one frame (a JSON array), so a socket gets at most 1 / batch_window_s
frames per second however fast the room goes. A room that has fallen behind (its event
waited a whole window already) counts the window from the last flush's *end* instead: a
flush to 10,000 sockets can outlast the window, and timed from its start, events from
Redis (one per loop turn) would each go out alone and pay the whole per-socket cost again.
(Nodes whose clocks disagree by more than a window only batch more, or less, than they need.)
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgpack
import orjson

from chat.broker import Event
from core.events import VIEW_CHANGING
from core.identity import Account
from core.recent import Recent

OP_TEXT = 0x1
OP_BINARY = 0x2
OP_PING = 0x9
MAX_BACKLOG_EVENTS = 5000  # what a joining socket may accumulate while it catches up

_ids = itertools.count(1)


def ws_frame(payload: bytes, opcode: int) -> bytes:
    """One unmasked, unfragmented server frame (RFC 6455 §5.2)."""
    size = len(payload)
    first = 0x80 | opcode
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", first, 126, size) + payload
    return struct.pack("!BBQ", first, 127, size) + payload


PING_FRAME = ws_frame(b"", OP_PING)


class Transport(Protocol):
    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...

    def is_closing(self) -> bool: ...

    def abort(self) -> None: ...


class Connection:
    """One WebSocket of one viewer (or host) in one room, on this node."""

    __slots__ = ("backlog", "binary", "catching_up", "closer", "id", "transport", "user")

    def __init__(
        self,
        transport: Transport,
        *,
        binary: bool,
        user: Account | None,
        closer: Callable[[int, str], None],
    ) -> None:
        self.id = next(_ids)
        self.transport = transport
        self.binary = binary  # msgpack frames instead of JSON
        self.user = user  # None: anonymous, read-only
        self.closer = closer  # closes the socket with a code, through its handler
        self.catching_up = True
        self.backlog: list[Event] = []

    def send(self, payload: Any) -> None:
        """Send one message to this socket alone (hello, history, errors)."""
        if self.binary:
            frame = ws_frame(msgpack.packb(payload), OP_BINARY)
        else:
            frame = ws_frame(orjson.dumps(payload), OP_TEXT)
        self.transport.write(frame)


def _payloads(events: list[Event], last_seq: int) -> list[dict[str, Any]]:
    # Ephemeral events (likes, viewers) carry the room's latest seq rather than one of their own.
    return [e.as_dict(last_seq) if e.ephemeral else e.as_dict() for e in events]


def encode_json(events: list[Event], last_seq: int) -> bytes:
    payloads = _payloads(events, last_seq)
    return orjson.dumps(payloads[0] if len(payloads) == 1 else payloads)


def encode_msgpack(events: list[Event], last_seq: int) -> bytes:
    payloads = _payloads(events, last_seq)
    packed: bytes = msgpack.packb(payloads[0] if len(payloads) == 1 else payloads)
    return packed


class Counters:
    """Plain integers the metrics collector reads at scrape time (nothing per event but +=)."""

    __slots__ = ("deliveries", "dropped_slow", "events", "frames")

    def __init__(self) -> None:
        self.events = 0
        self.frames = 0
        self.deliveries = 0
        self.dropped_slow = 0


class LocalRoom:
    def __init__(
        self,
        name: str,
        *,
        send_buffer_limit: int,
        batch_window_s: float,
        counters: Counters,
        on_drop: Callable[[LocalRoom, Connection], None],
    ) -> None:
        self.name = name
        self.sockets: dict[int, Connection] = {}
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.last_seq = 0
        self.viewers = -1  # last count sent
        self._views: Recent[str, dict[str, Any]] = Recent(self.VIEW_TTL_S, max_size=1)  # its subject's
        self.buckets: dict[str, tuple[float, float]] = {}  # user id → rate-limit bucket
        self._pending: list[Event] = []
        self._scheduled = False
        self._flush_started = 0.0
        self._flush_ended = 0.0
        self._limit = send_buffer_limit
        self._window = batch_window_s
        self._counters = counters
        self._on_drop = on_drop
        self._loop = asyncio.get_running_loop()

    VIEW_TTL_S = 1.0

    async def view(self, load: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """The room's subject as `hello` shows it, shared by everyone joining within VIEW_TTL_S:
        when it is stale, the joiners of that moment all wait for one load (a join storm costs
        one read of it, not one per socket). A view-changing event drops it."""
        view = await self._views.get(self.name, load)
        assert view is not None  # a subject's view is never None (a missing one raises)
        return view

    def push(self, event: Event) -> None:
        if not event.ephemeral and event.seq > self.last_seq:
            self.last_seq = event.seq
        if event.type in VIEW_CHANGING:  # the cached `hello` view would show the wrong thing
            self._views.forget(self.name)
        self._pending.append(event)
        if self._scheduled:
            return
        self._scheduled = True
        now = time.monotonic()
        if time.time() - event.ts < self._window:  # keeping up: a window from the last flush's start
            wait = self._flush_started + self._window - now
        else:  # behind (the event waited a window already): the room's events go out together
            wait = self._flush_ended + self._window - now
        if wait > 0:
            self._loop.call_later(wait, self.flush)
        else:
            # Still one loop turn: events the same read brought in go out together.
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        events, self._pending = self._pending, []
        if not events:
            return
        self._flush_started = time.monotonic()
        counters = self._counters
        counters.events += len(events)
        text_frame: bytes | None = None
        binary_frame: bytes | None = None
        limit = self._limit
        sent = 0
        for conn in list(self.sockets.values()):
            if conn.catching_up:
                conn.backlog.extend(events)
                if len(conn.backlog) > MAX_BACKLOG_EVENTS:
                    self.drop(conn)
                continue
            transport = conn.transport
            if transport.get_write_buffer_size() > limit or transport.is_closing():
                self.drop(conn)
                continue
            if conn.binary:
                if binary_frame is None:
                    binary_frame = ws_frame(encode_msgpack(events, self.last_seq), OP_BINARY)
                transport.write(binary_frame)
            else:
                if text_frame is None:
                    text_frame = ws_frame(encode_json(events, self.last_seq), OP_TEXT)
                transport.write(text_frame)
            sent += 1
        counters.frames += sent
        counters.deliveries += sent * len(events)
        self._flush_ended = time.monotonic()

    def drop(self, conn: Connection) -> None:
        """A consumer that cannot keep up: cut it off now; its buffered bytes are freed."""
        self.sockets.pop(conn.id, None)
        self._counters.dropped_slow += 1
        conn.transport.abort()
        self._on_drop(self, conn)

    def go_live(self, conn: Connection, sent_upto: int) -> None:
        """End a socket's catch-up: send what arrived meanwhile and is newer than sent_upto."""
        backlog, conn.backlog = conn.backlog, []
        fresh = [e for e in backlog if e.ephemeral or e.seq > sent_upto]
        if fresh:
            encode = encode_msgpack if conn.binary else encode_json
            frame = ws_frame(encode(fresh, self.last_seq), OP_BINARY if conn.binary else OP_TEXT)
            conn.transport.write(frame)
        conn.catching_up = False

    def ping_all(self) -> None:
        for conn in list(self.sockets.values()):
            if not conn.catching_up and not conn.transport.is_closing():
                conn.transport.write(PING_FRAME)

    def connections_of(self, user_id: str) -> list[Connection]:
        return [c for c in self.sockets.values() if c.user is not None and c.user.id == user_id]
