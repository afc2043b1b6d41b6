"""Lean WebSocket load generator for the fan-out benchmark (one process of it).

Started by bench/fanout.py, never by hand. It opens `count` raw WebSocket client
connections to one room (livecart: /api/streams/{id}/ws; socketio: engine.io v4 over
websocket), reports READY, then counts deliveries until told to stop.

Why raw: an aiohttp client WebSocket costs ~20 us of Python per frame; here a socket
is an asyncio.Protocol whose data_received walks the frame headers of the chunk and
counts events with one bytes.count() per frame (C speed). Only `sample` sockets
(spread over the whole population) parse their frames with orjson to measure latency
(receive time.time() - the event's publish ts, same machine clock) and to check that
the room's seq numbers arrive in order with no gap.

Control protocol (stdin/stdout lines):
  -> "READY <connected> <failed> <seconds>"  once every connection is open (and, for
     livecart, got its hello; for socketio, its namespace CONNECT)
  <- "GO"     reset counters, start the 100 ms sampler of the running total
  <- "STAT"   -> "STAT <total> <lost>"
  <- "STOP"   write the result JSON to --out, print "DONE", close every socket, exit
Every wait is bounded; the process also exits on its own at --max-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import resource
import sys
import time

import orjson

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B65"
CHAT_PAT = b'"chat"'  # livecart: appears once per chat event (its "type"), in a frame or a batch array


def mask_frame(payload: bytes, opcode: int = 1) -> bytes:
    """A client->server frame (FIN set, masked, payload < 126 bytes: pongs and tiny texts)."""
    assert len(payload) < 126
    key = os.urandom(4)
    masked = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + key + masked


class Gen:
    """Shared state of one generator process."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.mode = args.mode
        self.host = args.host
        self.port = args.port
        self.path = args.path
        self.lat: list[float] = []  # seconds, sample sockets only
        self.conns: list[Viewer] = []
        self.lost = 0  # connections lost after they were ready
        self.lost_before_go = 0
        self.close_codes: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.gap_events = 0  # sample sockets: seq jumps (missed events)
        self.dup_events = 0  # sample sockets: seq not increasing
        self.going = False
        self.stopping = False
        self.lat_t: list[float] = []  # receive time of each latency sample

    def err(self, key: str) -> None:
        self.errors[key] = self.errors.get(key, 0) + 1


class Viewer(asyncio.Protocol):
    __slots__ = (
        "buf",
        "count",
        "frames",
        "g",
        "hs",
        "last_seq",
        "lc",
        "plain",
        "ready",
        "sample",
        "state",
        "transport",
    )

    def __init__(self, g: Gen, sample: bool, ready: asyncio.Future[None]) -> None:
        self.g = g
        self.lc = g.mode == "livecart"
        self.sample = sample
        self.ready = ready
        self.transport: asyncio.Transport | None = None
        self.state = 0  # 0 HTTP upgrade pending, 1 upgraded (waiting hello / CONNECT), 2 ready
        self.hs = b""
        self.buf: bytearray | None = None
        self.count = 0  # deliveries since GO
        self.frames = 0  # data frames since GO
        self.last_seq = -1
        self.plain = False  # ready and not a sample socket: count only

    # -- connection ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        req = (
            f"GET {self.g.path} HTTP/1.1\r\nHost: {self.g.host}:{self.g.port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\nUser-Agent: livecart-bench\r\n\r\n"
        )
        transport.write(req.encode())  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        g = self.g
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed during handshake: {exc!r}"))
        elif self.state == 2 and not g.stopping:
            if g.going:
                g.lost += 1
            else:
                g.lost_before_go += 1
        self.state = 3

    # -- receiving ----------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:  # the hot path
        if self.state != 2:
            if self.state == 0:
                data = self._upgrade(data)
                if not data:
                    return
            elif self.state == 3:
                return
        buf = self.buf
        if buf is None and self.plain:  # fast path: the chunk is exactly one data frame
            b1 = data[1] if len(data) > 1 else 255
            hl = 2 if b1 < 126 else (4 if b1 == 126 else 0)
            if hl and data[0] & 15 < 3 and len(data) == hl + (b1 if hl == 2 else (data[2] << 8) | data[3]):
                if self.lc:
                    c = data.count(CHAT_PAT, hl)
                    if not c:
                        self._non_chat(data[hl:])
                    self.count += c
                    self.frames += 1
                    return
                if data[hl] == 52 and data[hl + 1] == 50:  # "42[...]"
                    self.count += 1
                    self.frames += 1
                    return
        if buf is not None:
            buf += data
            data = buf  # type: ignore[assignment]
        n = len(data)
        pos = 0
        cnt = 0
        frames = 0
        lc = self.lc
        plain = self.plain
        while n - pos >= 2:
            b1 = data[pos + 1]
            if b1 < 126:
                s = pos + 2
                end = s + b1
            elif b1 == 126:
                if n - pos < 4:
                    break
                s = pos + 4
                end = s + ((data[pos + 2] << 8) | data[pos + 3])
            else:
                if n - pos < 10:
                    break
                s = pos + 10
                end = s + int.from_bytes(data[pos + 2 : pos + 10], "big")
            if end > n:
                break
            op = data[pos] & 15
            if op < 3 and plain:  # text / binary / continuation on a counting socket
                if lc:
                    c = data.count(CHAT_PAT, s, end)
                    if not c:
                        self._non_chat(bytes(data[s:end]))
                    cnt += c
                elif data[s] == 52 and end - s > 1 and data[s + 1] == 50:  # "42[...]"
                    cnt += 1
                elif end - s == 1 and data[s] == 50:  # engine.io ping "2"
                    self.transport.write(mask_frame(b"3"))  # type: ignore[union-attr]
                frames += 1
            else:
                frames += self._frame(op, bytes(data[s:end]))
            pos = end
        self.count += cnt
        self.frames += frames
        if pos == n:
            self.buf = None
        elif buf is not None:
            del buf[:pos]
        else:
            self.buf = bytearray(data[pos:])

    def _non_chat(self, payload: bytes) -> None:
        """livecart, counting socket, a frame with no chat event: record error events (rare)."""
        if b'"type":"error"' in payload:
            try:
                data = orjson.loads(payload).get("data")
            except (orjson.JSONDecodeError, AttributeError):
                data = payload[:120]
            self.g.err(f"livecart: error event after hello: {data}")

    def _upgrade(self, data: bytes) -> bytes:
        self.hs += data
        i = self.hs.find(b"\r\n\r\n")
        if i < 0:
            if len(self.hs) > 16384:
                self._fail("upgrade: header too long")
            return b""
        head, rest = self.hs[:i], self.hs[i + 4 :]
        self.hs = b""
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            self._fail("upgrade: " + status.decode("latin-1")[:80])
            return b""
        self.state = 1
        return rest

    def _fail(self, why: str) -> None:
        self.g.err(why)
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        self.state = 3
        if self.transport is not None:
            self.transport.close()

    def _frame(self, op: int, payload: bytes) -> int:
        """The slow path: control frames, handshake frames, sample sockets. Returns 1 for a data frame."""
        tr = self.transport
        assert tr is not None
        if op == 8:  # close
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            reason = payload[2:].decode("utf-8", "replace")[:60]
            key = f"{code} {reason}".strip()
            self.g.close_codes[key] = self.g.close_codes.get(key, 0) + 1
            try:
                tr.write(mask_frame(payload[:2], 8))
            finally:
                tr.close()
            return 0
        if op == 9:  # ping -> pong
            tr.write(mask_frame(payload[:125], 10))
            return 0
        if op == 10:
            return 0
        if self.state == 1:
            self._handshake_frame(payload)
            return 0
        now = time.time()
        g = self.g
        if self.lc:
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError:
                g.err("livecart: non-JSON frame")
                return 1
            events = obj if isinstance(obj, list) else [obj]
            for ev in events:
                if ev.get("type") != "chat":
                    if ev.get("type") == "error":
                        g.err(f"livecart: error event after hello: {ev.get('data')}")
                    continue
                self.count += 1
                g.lat.append(now - ev["ts"])
                g.lat_t.append(now)
                seq = ev.get("seq", 0)
                self._check_seq(seq)
            return 1
        # socket.io
        if payload[:2] == b"42":
            try:
                name, data = orjson.loads(payload[2:])[:2]
            except (orjson.JSONDecodeError, ValueError, TypeError):
                g.err("socketio: bad event packet")
                return 1
            if name == "chat":
                self.count += 1
                g.lat.append(now - data["ts"])
                g.lat_t.append(now)
                self._check_seq(data.get("n", 0))
            return 1
        if payload == b"2":
            tr.write(mask_frame(b"3"))
            return 1
        if payload[:1] in (b"1", b"4"):  # engine.io close / socket.io disconnect or error
            g.err("socketio: " + payload[:40].decode("utf-8", "replace"))
        return 1

    def _check_seq(self, seq: int) -> None:
        last = self.last_seq
        if last >= 0 and self.g.going:
            if seq > last + 1:
                self.g.gap_events += seq - last - 1
            elif seq <= last:
                self.g.dup_events += 1
        self.last_seq = seq

    def _handshake_frame(self, payload: bytes) -> None:
        if self.lc:
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError:
                self._fail("livecart: first frame not JSON")
                return
            if isinstance(obj, dict) and obj.get("type") == "hello":
                self.last_seq = int((obj.get("data") or {}).get("seq", 0) or 0)
                self.state = 2
                self.plain = not self.sample
                self.ready.set_result(None)
            elif isinstance(obj, dict) and obj.get("type") == "error":
                self._fail(
                    f"livecart: error frame instead of hello: {orjson.dumps(obj.get('data')).decode()[:200]}"
                )
            else:
                self._fail(f"livecart: first frame not hello: {payload[:60]!r}")
            return
        if payload[:1] == b"0":  # engine.io OPEN -> socket.io namespace CONNECT
            self.transport.write(mask_frame(b"40"))  # type: ignore[union-attr]
        elif payload[:2] == b"40":
            self.state = 2
            self.plain = not self.sample
            self.ready.set_result(None)
        elif payload == b"2":
            self.transport.write(mask_frame(b"3"))  # type: ignore[union-attr]
        else:
            self._fail(f"socketio: unexpected handshake frame {payload[:60]!r}")


async def open_all(
    g: Gen, count: int, sample_every: int, offset: int, batch: int, timeout: float
) -> tuple[int, int]:
    loop = asyncio.get_running_loop()
    failed = 0

    async def one(idx: int) -> Viewer | None:
        for attempt in range(3):
            fut: asyncio.Future[None] = loop.create_future()
            v = Viewer(g, sample=(offset + idx) % sample_every == 0, ready=fut)
            try:
                await asyncio.wait_for(loop.create_connection(lambda v=v: v, g.host, g.port), timeout)
                await asyncio.wait_for(fut, timeout)
                return v
            except (OSError, TimeoutError, ConnectionError) as e:
                if not isinstance(e, ConnectionError) or "closed during handshake" in str(e):
                    g.err(f"connect attempt {attempt + 1}: {type(e).__name__}: {str(e)[:80]}")
                else:  # already recorded by _fail
                    g.err(f"connect attempt {attempt + 1} failed")
                if v.transport is not None:
                    v.transport.abort()
                await asyncio.sleep(0.5 + attempt)
        return None

    for start in range(0, count, batch):
        res = await asyncio.gather(*(one(i) for i in range(start, min(count, start + batch))))
        for v in res:
            if v is None:
                failed += 1
            else:
                g.conns.append(v)
    return len(g.conns), failed


async def main_async(args: argparse.Namespace) -> int:
    g = Gen(args)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 16)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    t_open = time.monotonic()
    connected, failed = await open_all(
        g, args.count, args.sample_every, args.offset, args.batch, args.connect_timeout
    )
    print(f"READY {connected} {failed} {time.monotonic() - t_open:.2f}", flush=True)
    series: list[tuple[float, int]] = []
    cpu0 = 0.0
    t_go = 0.0

    async def sampler() -> None:
        while not g.stopping:
            series.append((time.time(), sum(c.count for c in g.conns)))
            await asyncio.sleep(0.1)

    sampler_task: asyncio.Task[None] | None = None
    deadline = time.monotonic() + args.max_seconds
    while True:
        try:
            line = await asyncio.wait_for(reader.readline(), max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            g.err("generator: max-seconds reached without STOP")
            line = b"STOP\n"
        cmd = line.strip().decode()
        if cmd == "GO":
            for c in g.conns:
                c.count = 0
                c.frames = 0
            g.lat.clear()
            g.lat_t.clear()
            g.going = True
            t_go = time.time()
            r = resource.getrusage(resource.RUSAGE_SELF)
            cpu0 = r.ru_utime + r.ru_stime
            sampler_task = asyncio.create_task(sampler())
        elif cmd == "STAT":
            print(f"STAT {sum(c.count for c in g.conns)} {g.lost}", flush=True)
        elif cmd == "STOP" or not line:
            g.stopping = True
            if sampler_task is not None:
                await sampler_task
            series.append((time.time(), sum(c.count for c in g.conns)))
            r = resource.getrusage(resource.RUSAGE_SELF)
            counts = [c.count for c in g.conns if c.state == 2 or c.count]
            result = {
                "connected": connected,
                "failed": failed,
                "lost": g.lost,
                "lost_before_go": g.lost_before_go,
                "total": sum(c.count for c in g.conns),
                "frames": sum(c.frames for c in g.conns),
                "per_socket_min": min(counts) if counts else 0,
                "per_socket_max": max(counts) if counts else 0,
                "samples": sum(1 for c in g.conns if c.sample),
                "lat": g.lat,
                "lat_t": g.lat_t,
                "series": series,
                "t_go": t_go,
                "cpu_s": r.ru_utime + r.ru_stime - cpu0,
                "errors": g.errors,
                "close_codes": g.close_codes,
                "gap_events": g.gap_events,
                "dup_events": g.dup_events,
                "loop": type(loop).__module__,
            }
            with open(args.out, "wb") as f:
                f.write(orjson.dumps(result))
            for c in g.conns:
                if c.transport is not None:
                    c.transport.abort()
            print("DONE", flush=True)
            return 0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["livecart", "socketio"], required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--offset", type=int, default=0, help="global index of this process's first socket")
    p.add_argument("--sample-every", type=int, default=50)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--connect-timeout", type=float, default=15.0)
    p.add_argument("--max-seconds", type=float, default=600.0)
    p.add_argument("--cpus", default="", help="comma-separated CPU list to pin to")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("the benchmark only talks to the loopback interface")
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, args.count + 256) if hard != resource.RLIM_INFINITY else args.count + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if args.loop == "uvloop":
        try:
            import uvloop

            return uvloop.run(main_async(args))
        except ImportError:
            print("uvloop not installed: using the default asyncio loop", file=sys.stderr)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
