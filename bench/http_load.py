"""Lean HTTP/1.1 keep-alive load generator for the benchmarks (stdlib asyncio only).

Why it exists: aiohttp's client costs ~0.3 of a core at a few thousand requests per second
(request building, header multidicts, a StreamReader per response). On a 2-core machine
that CPU is taken from the server under test, so the benchmark measured the generator as
much as the server. Here each connection is an asyncio.Protocol: requests are pre-encoded
bytes (the fixed part built once per template, only the Idempotency-Key formatted per
request) and responses are parsed just enough to be correct for livecart's aiohttp server:
status line, headers up to CRLFCRLF, a Content-Length body (header names case-insensitive).
A response without Content-Length (chunked, or close-delimited) is an error, never a guess.

Closed loop: `concurrency` persistent connections, each with one request in flight, send
until a monotonic deadline (or a total request cap), then close. Connection errors are
counted, not fatal; a lost connection is reopened at most `max_reopens` times. Every wait
is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

NO_BODY_STATUSES = frozenset({204, 304})


class HttpLoadError(RuntimeError):
    """A response this generator cannot parse correctly: fatal for the whole run."""


@dataclass(frozen=True, slots=True)
class RequestTemplate:
    """One pre-encoded request: `head` + idempotency key + `tail` is the full request."""

    head: bytes
    tail: bytes


def build_request(
    method: str,
    path: str,
    host: str,
    headers: dict[str, str],
    body: bytes = b"",
    key_header: str = "Idempotency-Key",
) -> RequestTemplate:
    """Encode the fixed part of a request once; the `key_header` value is left for each send."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + f"\r\n{key_header}: ").encode("latin-1")
    return RequestTemplate(head=head, tail=b"\r\n\r\n" + body)


@dataclass(frozen=True, slots=True)
class Response:
    """A parsed response head: where the whole response ends in the buffer."""

    status: int
    end: int
    close: bool


def parse_response(buf: bytes, pos: int) -> Response | None:
    """The response starting at `buf[pos]`, or None while it is incomplete."""
    head_end = buf.find(b"\r\n\r\n", pos)
    if head_end < 0:
        return None
    if buf[pos : pos + 7] != b"HTTP/1." or buf[pos + 12 : pos + 13] not in (b" ", b"\r"):
        raise HttpLoadError(f"not an HTTP/1.x status line: {buf[pos : pos + 40]!r}")
    status = int(buf[pos + 9 : pos + 12])
    head = buf[pos:head_end].lower() + b"\r\n"
    if b"\r\ntransfer-encoding:" in head:
        raise HttpLoadError(f"chunked / transfer-encoded response (status {status}): not supported")
    at = head.find(b"\r\ncontent-length:")
    if at >= 0:
        length = int(head[at + 17 : head.find(b"\r\n", at + 17)])
    elif status in NO_BODY_STATUSES:
        length = 0
    else:
        raise HttpLoadError(f"response without Content-Length (status {status}): not supported")
    close = b"\r\nconnection: close" in head or buf[pos + 5 : pos + 8] == b"1.0"
    return Response(status=status, end=head_end + 4 + length, close=close)


@dataclass
class LoadResult:
    """What a run measured; `latencies` (seconds) and `statuses` count complete answers only."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    connects: int = 0
    reopens: int = 0
    abandoned: int = 0  # sent, never answered (connection lost, or the grace period ran out)
    elapsed: float = 0.0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class _Load:
    """State shared by every connection of one run."""

    def __init__(
        self, templates: Sequence[RequestTemplate], concurrency: int, deadline: float, max_requests: int
    ) -> None:
        self.templates = templates
        self.stride = concurrency
        self.deadline = deadline
        self.max_requests = max_requests
        self.key_prefix = secrets.token_hex(6).encode()
        self.result = LoadResult()
        self.fatal: HttpLoadError | None = None
        self.live: set[_Conn] = set()

    def more(self) -> bool:
        return (
            self.fatal is None and self.result.sent < self.max_requests and time.monotonic() < self.deadline
        )

    def fail(self, exc: HttpLoadError) -> None:
        if self.fatal is None:
            self.fatal = exc
        for conn in list(self.live):
            conn.abort()


class _Slot:
    """One of the `concurrency` closed loops; survives reopens of its connection."""

    __slots__ = ("next_index", "reopens")

    def __init__(self, index: int) -> None:
        self.next_index = index  # template index, stepping by `concurrency` like a buyer loop
        self.reopens = 0


class _Conn(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, load: _Load, slot: _Slot) -> None:
        self.load = load
        self.slot = slot
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.started: float | None = None  # perf_counter of the request in flight
        self.closing = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.load.live.add(self)
        self.load.result.connects += 1
        self._send_next()

    def _send_next(self) -> None:
        load = self.load
        if self.closing or not load.more():
            self.close()
            return
        slot = self.slot
        template = load.templates[slot.next_index % len(load.templates)]
        slot.next_index += load.stride
        load.result.sent += 1
        key = b"%s%012x" % (load.key_prefix, load.result.sent)
        self.started = time.perf_counter()
        assert self.transport is not None
        self.transport.write(template.head + key + template.tail)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        pos = 0
        try:
            while pos < len(buf):
                if self.started is None:
                    raise HttpLoadError(f"data with no request in flight: {buf[pos : pos + 40]!r}")
                response = parse_response(buf, pos)
                if response is None:
                    break
                if response.end > len(buf):
                    break
                self._answered(response)
                pos = response.end
        except (HttpLoadError, ValueError) as exc:
            self.load.fail(exc if isinstance(exc, HttpLoadError) else HttpLoadError(str(exc)))
            return
        self.buf = buf[pos:]
        if pos and self.started is None:
            self._send_next()

    def _answered(self, response: Response) -> None:
        result = self.load.result
        assert self.started is not None
        result.latencies.append(time.perf_counter() - self.started)
        result.statuses[response.status] = result.statuses.get(response.status, 0) + 1
        self.started = None
        self.closing = self.closing or response.close

    def connection_lost(self, exc: Exception | None) -> None:
        self.load.live.discard(self)
        if self.started is not None:
            self.load.result.abandoned += 1
            self.load.result.error("lost_in_flight")
            self.started = None
        if exc is not None:
            self.load.result.error(type(exc).__name__)
        if not self.done.done():
            self.done.set_result(None)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def _connect(load: _Load, slot: _Slot, host: str, port: int, timeout: float) -> _Conn | None:
    """Open one connection of `slot`; None (error counted) when it fails."""
    loop = asyncio.get_running_loop()
    try:
        _, conn = await asyncio.wait_for(
            loop.create_connection(lambda: _Conn(load, slot), host, port), timeout
        )
    except (OSError, TimeoutError) as exc:
        load.result.error(f"connect_{type(exc).__name__}")
        return None
    return conn


async def _run_slot(
    load: _Load, slot: _Slot, host: str, port: int, max_reopens: int, connect_timeout: float, grace: float
) -> None:
    """Keep one closed loop going until the deadline, reopening its connection a bounded number of times."""
    while True:
        conn = await _connect(load, slot, host, port, connect_timeout)
        if conn is not None:
            wait = max(0.0, load.deadline - time.monotonic()) + grace
            try:
                await asyncio.wait_for(asyncio.shield(conn.done), wait)
            except TimeoutError:
                load.result.error("grace_expired")
                conn.abort()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(conn.done, 5)
        if not load.more() or slot.reopens >= max_reopens:
            return
        slot.reopens += 1
        load.result.reopens += 1
        await asyncio.sleep(min(0.05 * slot.reopens, max(0.0, load.deadline - time.monotonic())))


async def run_load(
    port: int,
    templates: Sequence[RequestTemplate],
    *,
    concurrency: int,
    duration: float,
    host: str = "127.0.0.1",
    max_requests: int = 50_000_000,
    max_reopens: int = 5,
    connect_timeout: float = 5.0,
    grace: float = 30.0,
) -> LoadResult:
    """Drive `concurrency` closed loops for `duration` seconds; raise HttpLoadError on an unparsable answer.

    Connection i sends templates[i], templates[i + concurrency], ... (modulo len(templates)),
    each with a fresh Idempotency-Key. After the deadline every loop waits at most `grace`
    seconds for its answer in flight, then every connection is closed.
    """
    if not templates:
        raise ValueError("no request templates")
    started = time.monotonic()
    load = _Load(templates, concurrency, started + duration, max_requests)
    slots = [_Slot(i) for i in range(concurrency)]
    try:
        await asyncio.gather(
            *(_run_slot(load, s, host, port, max_reopens, connect_timeout, grace) for s in slots)
        )
    finally:
        for conn in list(load.live):
            conn.abort()
    load.result.elapsed = time.monotonic() - started
    if load.fatal is not None:
        raise load.fatal
    return load.result
