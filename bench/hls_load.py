"""1,000 LL-HLS players on one livecart process, against the same players on nginx serving a copy.

    .venv/bin/python bench/hls_load.py [--clients 1000] [--seconds 30] [--rounds 3]
                                       [--arms livecart,nginx] [--warmup 5] [--drain 5] [--poll-ms 20]

The issue asks whether one livecart process serves 1,000 Low-Latency HLS clients doing blocking
reloads of one stream with a p99 part latency under one part duration, next to a plain file server.

What runs (everything on 127.0.0.1, every process stopped by its PID in a `finally`):

- **livecart**: one `python -m server serve` process (bench/relay.py's `start_livecart`: SQLite,
  `LIVECART_ICE_ADDRESSES=127.0.0.1`, one worker), a host and a stream made over the HTTP API.
- **publisher** (`hls_load.py publish`, aiortc): WHIP with H.264 preferred, sending the camera-like
  clip of bench/camera.py encoded once as H.264 (~2 Mbit/s, 30 fps, a keyframe every 2 s) at real
  time as encoded frames (bench/relay_peers.py's connection, negotiation and tone; camera.py's
  `CameraTrack`), so livecart cuts parts from a camera's frames, not from a test pattern.
- **tap** (`hls_load.py tap`, one aiohttp client of livecart, in BOTH arms so both carry the same
  background work): a blocking-reload loop on its own connection (it asks for the next part the
  moment an answer arrives, so it is among the first waiters woken when a part is cut), and a
  writer that fetches every new part (a segment is its parts joined; init segments once) and
  copies it into nginx's docroot, then the playlist, each as temp file + rename. It logs, per
  part: when it first saw the part listed (`seen`), when the playlist listing it was renamed into
  the docroot (`written`), its size and duration, and its end on the media clock (the segment's
  `EXT-X-PROGRAM-DATE-TIME` + the durations of its parts so far).
- **nginx** (Debian's package, our own process: a generated nginx.conf, `daemon off;
  master_process on; worker_processes 1;` by default: one serving process on each side, as the
  issue's "one process", on the same pinned core; `sendfile on`, access log off, keep-alive
  without a request cap, no open-file cache so a renamed playlist is seen at once).
- **generator** (`hls_load.py gen`, uvloop, one process by default, `--gen-procs` to split): N
  players, each one keep-alive HTTP/1.1 connection driven by an `asyncio.Protocol` with
  pre-formatted requests (aiohttp's client costs ~0.3 of a core per few thousand requests/s,
  which the server under test would lack on two cores; responses are parsed with
  bench/http_load.py's `parse_response`; identical playlists are parsed once). A player joins
  with `GET live.m3u8`, then loops: on livecart a blocking reload
  `live.m3u8?_HLS_msn=M&_HLS_part=P` for the part after the last one it got, then `GET
  partM.P.m4s`; on nginx (which cannot hold a request) it polls `live.m3u8` every `--poll-ms`
  (default 20 ms, 1/10 of a 0.2 s part) until the part is listed, then GETs it. A poller that
  knows the cadence is a file server's best case: after a part seen at s with duration d it first
  polls at s + d - poll (not at once), which takes the polls from about eight per part to about 1.3
  (measured) and keeps the bound (one poll interval) the same. A player that falls out of the
  listed window jumps to the live edge (counted as `behind`; its skipped parts count as missing).

Part latency = when the player had the whole part - when the part became available, one machine
clock (CLOCK_MONOTONIC, shared by the processes). "Available":

- livecart: the earliest moment anyone outside the server learnt the part exists: the tap's
  blocking reload answer, or the first player answer in which it is the newest part, whichever
  came first. That is after the cut by one wake-up and one loopback answer (about a millisecond
  when the server is not behind); it cannot be earlier than the cut, so the figure errs on
  livecart's side by that much, never against it.
- nginx: the moment the tap renamed the playlist that lists it into the docroot (files first).
  The copy from livecart to the docroot is not charged to nginx.
- Cross-check, same reference for both arms: the part's end on the media clock (wall clock,
  taken from the playlist: ≈ when the server cut it, within the frames' arrival jitter).
  Reported as `p99_media_ms` (for nginx it includes the copy) and `origin_lag_ms` (median
  available - media end). A server that is behind stamps the segment's date-time late too, so
  there the cross-check can come out slightly negative.

Rounds alternate the arms' order (round 1 livecart then nginx, round 2 the reverse, ...). In each
arm the players connect (100 at a time), warm up `--warmup` s, are measured for `--seconds` s
(parts that became available in that window; CPU from /proc over it), then keep playing for
`--drain` s so the window's late parts are still counted; a part a player never got is
`missing`. CPU: utime + stime per process from /proc/<pid>/stat (bench/procs.py), in % of one
core, for livecart, nginx's master and workers, the tap, the publisher and each generator;
`softirq` is the machine's interrupt time (loopback TCP is mostly that, charged to no process);
`other` is the machine's remaining busy time (/proc/stat) minus all of those processes (the
busiest others are named above 15 %). The machine may be shared: before each arm the run waits
(up to `--wait-quiet` s) for the rest of it to be under 15 % of a core for 3 s. Default pinning:
the servers on core 0, generator, tap and publisher on core 1 (`--server-cpus`, `--gen-cpus`; ''
= unpinned). The generator's own CPU bounds what can be measured: above 80 % of a core the row
warns, and its event-loop lag (a 10 ms timer's lateness) is its share of every latency.

Needs nginx (`apt-get install -y nginx`; only the binary is used, its service is not started)
and the `bench` extra (numpy) for the clip.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import math
import os
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO, cast

from http_load import HttpLoadError, parse_response  # bench/, this script's directory
from procs import TICKS, cpu_seconds, free_port, stop

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SCRIPT = str(Path(__file__).resolve())
KEY = 1000  # a part's key: msn * KEY + index (livecart cuts ~10 parts per segment)
FETCH, WAIT, BEHIND = 0, 1, 2
JOIN, RELOAD, PART = "join", "reload", "part"
MAX_REOPENS = 20  # per player connection
REQUEST_TIMEOUT_S = 10.0  # livecart holds a blocking reload at most 3 target durations (6 s)


# -- the playlist, as a player reads it ---------------------------------------------------------
_PART = re.compile(r'#EXT-X-PART:DURATION=([\d.]+),URI="part(\d+)\.(\d+)\.m4s"')
_SEGMENT = re.compile(r"^seg(\d+)\.m4s$", re.M)


@dataclass(frozen=True, slots=True)
class Listing:
    """What a player needs from a playlist: the listed parts and which segments are complete."""

    durations: dict[int, float]  # listed part key -> duration (s)
    complete: dict[int, int]  # complete segment msn -> how many of its parts are listed
    newest: int  # the newest listed part's key, -1 if none
    oldest: int  # the oldest listed part's key


def parse_listing(text: str) -> Listing:
    durations = {int(m) * KEY + int(i): float(d) for d, m, i in _PART.findall(text)}
    complete = {int(m): 0 for m in _SEGMENT.findall(text)}
    for key in durations:
        if key // KEY in complete:
            complete[key // KEY] += 1
    return Listing(durations, complete, max(durations, default=-1), min(durations, default=-1))


def resolve(listing: Listing, want: int) -> tuple[int, int]:
    """What to do about the part `want`: FETCH it, WAIT for it (its key moved past the end of a
    complete segment when that is where it was), or BEHIND: it left the window, take the newest."""
    for _ in range(64):  # the window holds 8 segments: bounded
        if want in listing.durations:
            return FETCH, want
        msn, index = divmod(want, KEY)
        count = listing.complete.get(msn)
        if count is None or index < count:
            break
        want = (msn + 1) * KEY
    if listing.newest >= 0 and want < listing.oldest:
        return BEHIND, listing.newest
    return WAIT, want


# -- the generator: N players in one process -----------------------------------------------------
class Load:
    """State shared by the players of one generator process."""

    def __init__(self, block: bool, host: str, port: int, prefix: str, poll_s: float) -> None:
        self.block = block
        self.host, self.port = host, port
        self.poll_s = poll_s
        self._prefix = prefix.encode()
        self._host = f"{host}:{port}".encode()
        self.join_request = b"GET %slive.m3u8 HTTP/1.1\r\nHost: %s\r\n\r\n" % (self._prefix, self._host)
        self.listings: dict[bytes, Listing] = {}
        self.first_seen: dict[int, float] = {}  # part key -> first playlist answer listing it as newest
        self.keys = array.array("q")  # every part received: key, monotonic time, size
        self.times = array.array("d")
        self.sizes = array.array("q")
        self.errors: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.behind = 0
        self.stopping = False
        self.players: list[Player] = []

    def listing(self, body: bytes) -> Listing:
        """Every player gets the same playlist bytes for a part: parse each text once."""
        got = self.listings.get(body)
        if got is None:
            if len(self.listings) > 64:
                self.listings.clear()
            got = self.listings[body] = parse_listing(body.decode())
        return got

    def reload_request(self, want: int) -> bytes:
        if not self.block:  # a plain file server ignores the query: ask for the file itself
            return self.join_request
        msn, index = divmod(want, KEY)
        return b"GET %slive.m3u8?_HLS_msn=%d&_HLS_part=%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (
            self._prefix,
            msn,
            index,
            self._host,
        )

    def part_request(self, key: int) -> bytes:
        msn, index = divmod(key, KEY)
        return b"GET %spart%d.%d.m4s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self._prefix, msn, index, self._host)

    async def open(self, player: Player) -> None:
        """Connect one player (bounded); a failure is counted and retried a bounded number of times."""
        loop = asyncio.get_running_loop()
        while not self.stopping:
            try:
                await asyncio.wait_for(loop.create_connection(lambda: player, self.host, self.port), 10)
                return
            except (OSError, TimeoutError) as exc:
                self.errors[f"connect_{type(exc).__name__}"] += 1
                player.reopens += 1
                if player.reopens > MAX_REOPENS:
                    self.errors["gave_up"] += 1
                    return
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        self.stopping = True
        for player in self.players:
            player.cancel_timer()
            if player.transport is not None:
                player.transport.abort()


class Player(asyncio.Protocol):
    """One LL-HLS player on one keep-alive connection, one request in flight at a time."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.transport: asyncio.Transport | None = None
        self.reopens = 0
        self.want = -1  # the next part's key
        self.seen = 0.0  # when the part being fetched was first seen listed by this player
        self.dur = 0.0  # its duration (s)
        self.due = 0.0  # poll mode: when to first poll for the next part
        self.idle = 0  # block mode: reloads in a row that brought nothing new
        self.timer: asyncio.TimerHandle | None = None
        self._reset()

    def _reset(self) -> None:
        self.kind = JOIN
        self.sent = 0.0  # monotonic time of the request in flight, 0 when none
        self.buf = b""
        self.need = 0  # body bytes still to come
        self.chunks: list[bytes] = []
        self.status = 0
        self.length = 0
        self.close_after = False

    # -- connection ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._reset()
        self._send(JOIN, self.load.join_request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.cancel_timer()
        load = self.load
        if load.stopping:
            return
        load.errors["lost_in_flight" if self.sent else "lost_idle"] += 1
        self.sent = 0.0
        self.reopens += 1
        if self.reopens > MAX_REOPENS:
            load.errors["gave_up"] += 1
            return
        asyncio.get_running_loop().call_later(0.2, lambda: asyncio.ensure_future(load.open(self)))

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _later(self, delay: float, action: Callable[[], None]) -> None:
        self.cancel_timer()
        self.timer = asyncio.get_running_loop().call_later(delay, action)

    def _send(self, kind: str, request: bytes) -> None:
        self.timer = None
        if self.load.stopping or self.transport is None:
            return
        self.kind = kind
        self.sent = time.monotonic()
        self.load.requests[kind] += 1
        self.transport.write(request)

    def _reload(self) -> None:
        self._send(RELOAD, self.load.reload_request(self.want))

    def _join(self) -> None:
        self._send(JOIN, self.load.join_request)

    # -- responses ------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.need:
            if self.kind != PART:
                self.chunks.append(data)
            self.need -= len(data)
            if self.need < 0:
                self._fail("extra_bytes")
            elif self.need == 0:
                self._complete(b"".join(self.chunks) if self.kind != PART else b"")
            return
        buf = self.buf + data if self.buf else data
        if not self.sent:
            self._fail("unasked_bytes")
            return
        try:
            response = parse_response(buf, 0)
        except (HttpLoadError, ValueError):
            self._fail("bad_response")
            return
        if response is None:
            self.buf = buf
            return
        self.buf = b""
        start = buf.find(b"\r\n\r\n") + 4
        self.status, self.close_after = response.status, response.close
        self.length = response.end - start
        have = len(buf) - start
        if have > self.length:
            self._fail("extra_bytes")
        elif have == self.length:
            self._complete(buf[start:] if self.kind != PART else b"")
        else:
            self.need = self.length - have
            self.chunks = [buf[start:]] if self.kind != PART else []

    def _fail(self, what: str) -> None:
        self.load.errors[what] += 1
        if self.transport is not None:
            self.transport.abort()

    def _complete(self, body: bytes) -> None:
        now = time.monotonic()
        load = self.load
        kind, status = self.kind, self.status
        self.sent, self.need, self.chunks = 0.0, 0, []
        if self.close_after:  # the server closes: count nothing lost, reconnect and rejoin
            load.errors["server_closed"] += 1
            if self.transport is not None:
                self.transport.close()
            return
        if load.stopping:
            return
        if status != 200:
            load.errors[f"{kind}_{status}"] += 1
            if kind == PART and status == 404:
                self._later(0.05, self._join)  # out of the window: back to the live edge
            else:
                self._later(
                    0.1, self._join if kind == JOIN else (self._reload if kind == RELOAD else self._part)
                )
            return
        if kind == PART:
            load.keys.append(self.want)
            load.times.append(now)
            load.sizes.append(self.length)
            self.want += 1
            self.idle = 0
            if load.block:
                self._reload()
            else:
                self.due = self.seen + self.dur - load.poll_s
                if self.due > now:
                    self._later(self.due - now, self._reload)
                else:
                    self._reload()
            return
        listing = load.listing(body)
        newest = listing.newest
        if newest >= 0 and newest not in load.first_seen:
            load.first_seen[newest] = now
        if kind == JOIN:
            if newest < 0:
                self._later(0.1, self._join)
                return
            self.want = newest + 1
        action, want = resolve(listing, self.want)
        if action == BEHIND:
            load.behind += 1
        if action == WAIT:
            self.want = want
            if not load.block:
                self._later(load.poll_s, self._reload)
            elif kind == RELOAD and self.idle >= 2:  # the server answered without the part twice
                self._later(0.05, self._reload)
            else:
                self.idle += kind == RELOAD
                self._reload()
            return
        self.want, self.seen, self.dur = want, now, listing.durations[want]
        self._part()

    def _part(self) -> None:
        self._send(PART, self.load.part_request(self.want))


async def run_generator(args: argparse.Namespace) -> None:
    """Connect the players, report, take the measuring window from stdin, play until it and the
    drain are over, write every received part to `args.out`."""
    load = Load(args.mode == "block", args.host, args.port, args.prefix, args.poll_ms / 1000)
    load.players = [Player(load) for _ in range(args.clients)]

    async def ramp() -> None:
        for i in range(0, len(load.players), 100):
            await asyncio.gather(*(load.open(p) for p in load.players[i : i + 100]))

    await asyncio.wait_for(ramp(), 120)

    async def watchdog() -> None:
        while not load.stopping:
            await asyncio.sleep(0.5)
            limit = time.monotonic() - REQUEST_TIMEOUT_S
            for player in load.players:
                if player.sent and player.sent < limit and player.transport is not None:
                    load.errors["timeout"] += 1
                    player.transport.abort()

    dog = asyncio.ensure_future(watchdog())
    connected = sum(p.transport is not None for p in load.players)
    print(json.dumps({"ramped": time.monotonic(), "connected": connected}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    line = await asyncio.wait_for(reader.readline(), 600)
    t0, t1, stop_at = (float(v) for v in line.split())
    lags: list[float] = []

    async def ticker() -> None:
        """How late a 10 ms timer fires in the window: the generator's own share of the latency
        (a response that arrives while the loop is busy is read that much later)."""
        while not load.stopping:
            at = time.monotonic()
            await asyncio.sleep(0.01)
            if t0 <= at < t1:
                lags.append(time.monotonic() - at - 0.01)

    tick = asyncio.ensure_future(ticker())
    marks: dict[str, Any] = {}
    for name, at in (("t0", t0), ("t1", t1)):
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        marks[name] = {
            "requests": dict(load.requests),
            "connected": sum(p.transport is not None for p in load.players),
        }
    await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
    load.stop()
    dog.cancel()
    tick.cancel()
    await asyncio.sleep(0.2)
    lags.sort()
    out = {
        "clients": args.clients,
        "first_seen": {str(k): v for k, v in load.first_seen.items()},
        "keys": load.keys.tolist(),
        "times": load.times.tolist(),
        "sizes": load.sizes.tolist(),
        "errors": dict(load.errors),
        "requests": dict(load.requests),
        "behind": load.behind,
        "marks": marks,
        "loop_lag_ms": [round(1000 * pct(lags, q), 1) for q in (0.5, 0.99, 1.0)],
    }
    Path(args.out).write_text(json.dumps(out))
    print(json.dumps({"done": True}), flush=True)


# -- the tap: follows livecart, copies to the docroot, logs when each part became available ------
def _write(path: Path, data: bytes) -> None:
    """Atomically, as a publisher into a web server's docroot must: temp file, then rename."""
    tmp = path.with_name("." + path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(tmp, path)


def part_name(key: int) -> str:
    return f"part{key // KEY}.{key % KEY}.m4s"


@dataclass(frozen=True, slots=True)
class FullPart:
    key: int
    duration: float
    media_end: float  # wall clock: the segment's program date-time + its parts' durations so far


def parse_full(text: str) -> tuple[list[str], list[FullPart], list[int], int]:
    """Init segment URIs, parts (with their media-clock end), complete segments, media sequence."""
    maps: list[str] = []
    parts: list[FullPart] = []
    segments: list[int] = []
    sequence, pdt, elapsed = 0, 0.0, 0.0
    for line in text.splitlines():
        if line.startswith("#EXT-X-MAP:URI="):
            maps.append(line[len('#EXT-X-MAP:URI="') : -1])
        elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            pdt = datetime.fromisoformat(line.split(":", 1)[1].replace("Z", "+00:00")).timestamp()
            elapsed = 0.0
        elif line.startswith("#EXT-X-PART:"):
            match = _PART.match(line)
            if match:
                duration = float(match.group(1))
                elapsed += duration
                key = int(match.group(2)) * KEY + int(match.group(3))
                parts.append(FullPart(key, duration, pdt + elapsed))
        elif line.startswith("seg") and line.endswith(".m4s"):
            segments.append(int(line[3:-4]))
    return maps, parts, segments, sequence


async def run_tap(base: str, docroot: Path, log_path: Path, max_seconds: float) -> None:
    import aiohttp

    deadline = time.monotonic() + max_seconds
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=8)) as http:

        async def get(name: str) -> bytes:
            async with http.get(base + name) as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{name}: {response.status} {body[:200]!r}")
                return body

        first = (await get("live.m3u8")).decode()
        playlists: asyncio.Queue[tuple[float, str]] = asyncio.Queue()
        playlists.put_nowait((time.monotonic(), first))

        async def reload(text: str) -> None:
            """Ask for the next part as soon as an answer arrives: first in line when it is cut."""
            listing = parse_listing(text)
            while time.monotonic() < deadline:
                _, want = resolve(listing, listing.newest + 1)
                msn, index = divmod(want, KEY)
                try:
                    body = await get(f"live.m3u8?_HLS_msn={msn}&_HLS_part={index}")
                except (RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
                    print(json.dumps({"tap_error": str(exc)[:200]}), file=sys.stderr, flush=True)
                    await asyncio.sleep(0.5)
                    continue
                now = time.monotonic()
                text = body.decode()
                playlists.put_nowait((now, text))
                listing = parse_listing(text)

        reloader = asyncio.ensure_future(reload(first))
        data: dict[int, bytes] = {}  # part bytes of the segments still in the window
        seen: dict[int, float] = {}
        written_maps: set[str] = set()
        written_segments: set[int] = set()
        logged: set[int] = set()
        announced = False

        async def copy(at: float, text: str, log: TextIO) -> None:
            """Copy what a playlist lists into the docroot (files first, the playlist last); log it."""
            maps, parts, segments, sequence = parse_full(text)
            for part in parts:
                seen.setdefault(part.key, at)
            for uri in maps:
                if uri not in written_maps:
                    _write(docroot / uri, await get(uri))
                    written_maps.add(uri)
            new = [p for p in parts if p.key not in logged]
            for part in new:
                if part.key not in data:
                    name = part_name(part.key)
                    data[part.key] = await get(name)
                    _write(docroot / name, data[part.key])
            for msn in segments:
                if msn in written_segments:
                    continue
                listed = [p.key for p in parts if p.key // KEY == msn]
                if listed and listed[0] % KEY == 0 and all(k in data for k in listed):
                    body = b"".join(data[k] for k in listed)
                else:
                    body = await get(f"seg{msn}.m4s")
                _write(docroot / f"seg{msn}.m4s", body)
                written_segments.add(msn)
            _write(docroot / "live.m3u8", text.encode())
            written = time.monotonic()
            for part in new:
                row = {
                    "k": part.key,
                    "seen": seen[part.key],
                    "written": written,
                    "size": len(data[part.key]),
                    "dur": part.duration,
                    "media_end": part.media_end,
                }
                log.write(json.dumps(row) + "\n")
                logged.add(part.key)
            log.flush()
            for key in [k for k in data if k // KEY < sequence - 1]:
                del data[key]
                logged.discard(key)
                with contextlib.suppress(OSError):
                    (docroot / part_name(key)).unlink()
            for msn in [m for m in written_segments if m < sequence - 1]:
                written_segments.discard(msn)
                with contextlib.suppress(OSError):
                    (docroot / f"seg{msn}.m4s").unlink()

        with log_path.open("a") as log:
            try:
                while time.monotonic() < deadline:
                    at, text = await asyncio.wait_for(playlists.get(), max(0.1, deadline - time.monotonic()))
                    try:
                        await copy(at, text, log)
                    except (RuntimeError, aiohttp.ClientError, TimeoutError, OSError) as exc:
                        # the next playlist copies what this one could not (`data` says what is there)
                        print(json.dumps({"tap_error": str(exc)[:200]}), file=sys.stderr, flush=True)
                        continue
                    if not announced:
                        announced = True
                        print("TAPPING", flush=True)
            finally:
                reloader.cancel()


# -- the publisher --------------------------------------------------------------------------------
async def run_publisher(whip: str, token: str, clip: Path, seconds: float) -> None:
    """H.264 + Opus over WHIP: the clip's encoded frames, paced at 30 fps (no encode here)."""
    import aiohttp
    import relay_peers  # bench/
    from aiortc import RTCRtpSender
    from camera import CameraTrack

    sys.path.insert(0, str(ROOT))
    from streaming import hooks

    hooks.install(("127.0.0.1",))
    pc = relay_peers.connection()
    video = pc.addTransceiver(CameraTrack(clip), direction="sendonly")
    codecs = RTCRtpSender.getCapabilities("video").codecs
    video.setCodecPreferences([c for c in codecs if c.mimeType == "video/H264"])
    pc.addTransceiver(relay_peers.Tone(), direction="sendonly")
    async with aiohttp.ClientSession() as http:
        await relay_peers.negotiate(http, pc, whip, token)
    print("PUBLISHING", flush=True)
    await asyncio.sleep(seconds)
    await pc.close()


# -- the orchestrator ------------------------------------------------------------------------------
class Lines:
    """A child's stdout, read by a thread, so that every wait for a line is bounded."""

    def __init__(self, proc: subprocess.Popen[bytes], name: str) -> None:
        self.name = name
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        stdout = proc.stdout
        assert stdout is not None

        def read() -> None:
            for line in stdout:
                self.lines.put(line)
            self.lines.put(None)

        threading.Thread(target=read, daemon=True).start()

    def next(self, timeout: float) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"{self.name}: no line within {timeout} s") from None
        if line is None:
            raise RuntimeError(f"{self.name}: exited")
        return line.decode().strip()


class Running:
    """Every process this run started; stop_all() stops them by PID, newest first."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.extra: list[int] = []  # nginx workers, in case the master dies without them

    def start(self, name: str, cmd: list[str], cpus: set[int] | None, **kw: Any) -> subprocess.Popen[bytes]:
        def pin() -> None:
            if cpus:
                os.sched_setaffinity(0, cpus)

        proc = subprocess.Popen(cmd, preexec_fn=pin, **kw)
        self.procs.append((name, proc))
        return proc

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                stop(proc, 15)
        for pid in self.extra:  # only if that PID is still an nginx (not a reused number)
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == "nginx":
                    os.kill(pid, signal.SIGKILL)


def pin_all_threads(pid: int, cpus: set[int] | None) -> None:
    """A process started elsewhere (relay.start_livecart): pin every thread it has so far; the
    threads they start later inherit it."""
    if not cpus:
        return
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task.name), cpus)


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def machine_busy() -> tuple[float, float]:
    """Busy CPU seconds of the whole machine so far (all cores), and of them the interrupt and
    softirq time (loopback TCP is mostly softirq work, which no process is charged for)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / TICKS, (irq + softirq) / TICKS


def all_processes() -> dict[int, tuple[str, float]]:
    """Every process's name and CPU seconds: to name what else ran when `other` is high."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                name = stat[stat.index("(") + 1 : stat.rindex(")")]
                fields = stat.rsplit(")", 1)[1].split()
                found[int(entry.name)] = (name, (int(fields[11]) + int(fields[12])) / TICKS)
    return found


def command(pid: int, name: str) -> str:
    try:
        line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        line = name
    return f"{pid} {line[:80]}"


def cpus_arg(value: str) -> set[int] | None:
    return {int(c) for c in value.split(",")} if value else None


def nginx_conf(root: Path, docroot: Path, port: int, workers: str) -> Path:
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (root / name).mkdir(exist_ok=True)
    conf = root / "nginx.conf"
    conf.write_text(
        f"""daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 16384;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{
    worker_connections 8192;
}}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 100000000;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    types {{
        application/vnd.apple.mpegurl m3u8;
        video/mp4 mp4 m4s;
    }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {docroot};
    }}
}}
"""
    )
    return conf


def wait_port(port: int, timeout: float) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    if not values:
        return math.nan
    return values[max(0, math.ceil(q * len(values)) - 1)]


def read_tap(log: Path) -> dict[int, dict[str, float]]:
    rows = {}
    for line in log.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows[int(row["k"])] = row
    return rows


@dataclass
class Context:
    args: argparse.Namespace
    running: Running
    tmp: Path
    livecart: subprocess.Popen[bytes]
    livecart_port: int
    stream_id: str
    publisher: subprocess.Popen[bytes]
    tap: subprocess.Popen[bytes]
    tap_log: Path
    nginx: subprocess.Popen[bytes] | None
    nginx_port: int
    wall_offset: float  # time.time() - time.monotonic()


def snapshot(ctx: Context, gens: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    ours = [ctx.livecart.pid, ctx.tap.pid, ctx.publisher.pid, os.getpid(), *(g.pid for g in gens)]
    procs: dict[str, float] = {
        "livecart": cpu_seconds(ctx.livecart.pid),
        "tap": cpu_seconds(ctx.tap.pid),
        "publisher": cpu_seconds(ctx.publisher.pid),
        "self": cpu_seconds(os.getpid()),
    }
    if ctx.nginx is not None:
        procs["nginx_master"] = cpu_seconds(ctx.nginx.pid)
        ours.append(ctx.nginx.pid)
        for pid in children(ctx.nginx.pid):
            procs[f"nginx_worker_{pid}"] = cpu_seconds(pid)
            ours.append(pid)
    for i, gen in enumerate(gens):
        procs[f"gen{i}"] = cpu_seconds(gen.pid)
    return {
        "at": time.monotonic(),
        "machine": machine_busy(),
        "procs": procs,
        "all": all_processes(),
        "ours": set(ours),
    }


def wait_quiet(ctx: Context, limit: float) -> tuple[float, bool]:
    """Before an arm, wait up to `limit` s for the rest of the machine (everything but this run's
    processes and interrupts) to use under 15 % of a core for 3 s in a row: on a shared machine
    a figure taken while someone's test suite runs measures that suite."""
    pids = [ctx.livecart.pid, ctx.tap.pid, ctx.publisher.pid, os.getpid()]
    if ctx.nginx is not None:
        pids += [ctx.nginx.pid, *children(ctx.nginx.pid)]
    start, quiet = time.monotonic(), 0
    while time.monotonic() - start < limit:
        busy0, ours0 = machine_busy(), cpu_seconds(*pids)
        time.sleep(1)
        busy1, ours1 = machine_busy(), cpu_seconds(*pids)
        other = (busy1[0] - busy1[1]) - (busy0[0] - busy0[1]) - (ours1 - ours0)
        quiet = quiet + 1 if other < 0.15 else 0
        if quiet >= 3:
            return round(time.monotonic() - start, 1), True
    return round(time.monotonic() - start, 1), False


def run_arm(ctx: Context, arm: str, round_no: int) -> dict[str, Any]:
    args = ctx.args
    waited, quiet = wait_quiet(ctx, args.wait_quiet) if args.wait_quiet > 0 else (0.0, False)
    if arm == "livecart":
        port, prefix, mode = ctx.livecart_port, f"/api/streams/{ctx.stream_id}/hls/", "block"
    else:
        port, prefix, mode = ctx.nginx_port, "/", "poll"
    shares = [
        args.clients // args.gen_procs + (i < args.clients % args.gen_procs) for i in range(args.gen_procs)
    ]
    gens, lines, outs = [], [], []
    spy: subprocess.Popen[bytes] | None = None
    try:
        for i, n in enumerate(shares):
            out = ctx.tmp / f"gen-{arm}-{round_no}-{i}.json"
            cmd = [PY, SCRIPT, "gen", "--mode", mode, "--port", str(port), "--prefix", prefix]
            cmd += ["--clients", str(n), "--poll-ms", str(args.poll_ms), "--out", str(out)]
            gen = ctx.running.start(
                f"gen{i}", cmd, cpus_arg(args.gen_cpus), stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            gens.append(gen)
            lines.append(Lines(gen, f"generator {i}"))
            outs.append(out)
        ramped = [json.loads(line.next(180)) for line in lines]
        t0 = time.monotonic() + args.warmup
        t1 = t0 + args.seconds
        stop_at = t1 + args.drain
        for gen in gens:
            assert gen.stdin is not None
            gen.stdin.write(f"{t0} {t1} {stop_at}\n".encode())
            gen.stdin.flush()
        time.sleep(max(0.0, t0 - time.monotonic()))
        before = snapshot(ctx, gens)
        if args.profile and arm == "livecart":
            cmd = [str(Path(PY).parent / "py-spy"), "record", "--pid", str(ctx.livecart.pid)]
            cmd += ["--duration", str(int(args.seconds)), "--rate", "100", "--nonblocking", "--format", "raw"]
            cmd += ["-o", str(args.profile / f"livecart-{args.clients}-r{round_no}.txt")]
            args.profile.mkdir(parents=True, exist_ok=True)
            spy = ctx.running.start("py-spy", cmd, cpus_arg(args.gen_cpus), stdout=subprocess.DEVNULL)
        time.sleep(max(0.0, t1 - time.monotonic()))
        after = snapshot(ctx, gens)
        for line in lines:
            assert json.loads(line.next(args.drain + 120)).get("done")
        for gen in gens:
            gen.wait(30)
        if spy is not None:
            spy.wait(60)
        results = [json.loads(out.read_text()) for out in outs]
    finally:
        for proc in [*gens, *([spy] if spy is not None else [])]:
            if proc.poll() is None:
                stop(proc, 10)
    row = summarize(ctx, arm, round_no, t0, t1, ramped, results, before, after)
    row["waited_quiet_s"], row["machine_quiet"] = waited, quiet
    return row


def summarize(
    ctx: Context,
    arm: str,
    round_no: int,
    t0: float,
    t1: float,
    ramped: list[dict[str, Any]],
    results: list[dict[str, Any]],
    before: dict[str, Any],
    after: dict[str, Any],
) -> dict[str, Any]:
    tap = read_tap(ctx.tap_log)
    first: dict[int, float] = {}
    for result in results:
        for key, at in result["first_seen"].items():
            first[int(key)] = min(at, first.get(int(key), math.inf))
    origin_field = "seen" if arm == "livecart" else "written"
    ref = {k: min(row[origin_field], first.get(k, math.inf)) for k, row in tap.items()}
    window = {k: at for k, at in ref.items() if t0 <= at < t1}
    latencies, media, mismatched = [], [], 0
    fifth = (t1 - t0) / 5
    early: list[float] = []  # parts of the window's first and last fifth: a server that falls
    late: list[float] = []  # behind shows a latency that grows through the window
    for result in results:
        for key, at, size in zip(result["keys"], result["times"], result["sizes"], strict=True):
            if key in window:
                latencies.append(at - window[key])
                if window[key] < t0 + fifth:
                    early.append(latencies[-1])
                elif window[key] >= t1 - fifth:
                    late.append(latencies[-1])
                media.append(at + ctx.wall_offset - tap[key]["media_end"])
                mismatched += size != tap[key]["size"]
    latencies.sort()
    media.sort()
    clients = sum(r["clients"] for r in results)
    errors: Counter[str] = Counter()
    requests = 0
    for result in results:
        errors.update(result["errors"])
        marks = result["marks"]
        requests += sum(marks["t1"]["requests"].values()) - sum(marks["t0"]["requests"].values())
    if mismatched:
        errors["size_mismatch"] += mismatched
    wall = after["at"] - before["at"]
    cpu = {
        name: round(100 * (after["procs"][name] - before["procs"].get(name, 0.0)) / wall, 1)
        for name in after["procs"]
    }
    ours = sum(after["procs"][n] - before["procs"].get(n, 0.0) for n in after["procs"])
    busy, irq = (a - b for a, b in zip(after["machine"], before["machine"], strict=True))
    other = round(100 * (busy - irq - ours) / wall, 1)
    nginx_cpu = round(sum(v for n, v in cpu.items() if n.startswith("nginx")), 1)
    server_cpu = cpu["livecart"] if arm == "livecart" else nginx_cpu
    gen_cpu = [v for n, v in cpu.items() if n.startswith("gen")]
    durations = [tap[k]["dur"] for k in window]
    lags = sorted(window[k] + ctx.wall_offset - tap[k]["media_end"] for k in window)
    expected = len(window) * clients
    requests_per_s = requests / (t1 - t0)
    row = {
        "bench": "hls_load",
        "arm": arm,
        "round": round_no,
        "clients": clients,
        "connected": sum(r["marks"]["t0"]["connected"] for r in results),
        "ramped_connected": sum(r["connected"] for r in ramped),
        "parts": len(window),
        "part_s": round(statistics.mean(durations), 3) if durations else None,
        "received": len(latencies),
        "missing": expected - len(latencies),
        "p50_ms": round(1000 * pct(latencies, 0.50), 1),
        "p95_ms": round(1000 * pct(latencies, 0.95), 1),
        "p99_ms": round(1000 * pct(latencies, 0.99), 1),
        "max_ms": round(1000 * pct(latencies, 1.0), 1),
        "p50_first_fifth_ms": round(1000 * statistics.median(early), 1) if early else None,
        "p50_last_fifth_ms": round(1000 * statistics.median(late), 1) if late else None,
        "p99_media_ms": round(1000 * pct(media, 0.99), 1),
        "origin_lag_ms": round(1000 * pct(lags, 0.5), 1),
        "errors": dict(errors),
        "behind": sum(r["behind"] for r in results),
        "requests_per_s": round(requests_per_s),
        "server_cpu_pct": server_cpu,
        "server_us_per_request": round(1e4 * server_cpu / requests_per_s, 1) if requests else None,
        "gen_cpu_pct": gen_cpu,
        "gen_loop_lag_ms": [r["loop_lag_ms"] for r in results],
        "cpu_pct": cpu,
        "softirq_pct": round(100 * irq / wall, 1),
        "other_pct": other,
    }
    if other > 15:
        busy = [
            (round(100 * (cpu_s - before["all"].get(pid, (name, 0.0))[1]) / wall, 1), command(pid, name))
            for pid, (name, cpu_s) in after["all"].items()
            if pid not in after["ours"]
        ]
        row["other_top"] = sorted(busy, reverse=True)[:5]
    if any(v > 80 for v in gen_cpu):
        row["warning"] = "generator above 80% of a core: it may be the limit"
    return row


def summary(rows: list[dict[str, Any]], arms: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"bench": "hls_load", "summary": True}
    for arm in arms:
        mine = [r for r in rows if r["arm"] == arm]
        out[arm] = {
            f"median_{k}": round(statistics.median(r[k] for r in mine), 1)
            for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms", "server_cpu_pct", "server_us_per_request")
        }
        out[arm]["median_gen_cpu_pct"] = round(statistics.median(sum(r["gen_cpu_pct"]) for r in mine), 1)
        out[arm]["p99_under_one_part"] = all(r["p99_ms"] < 1000 * (r["part_s"] or 0) for r in mine)
    if "livecart" in arms and "nginx" in arms:
        lc, ng = out["livecart"], out["nginx"]
        out["ratio_p99_livecart_over_nginx"] = round(lc["median_p99_ms"] / ng["median_p99_ms"], 2)
        out["ratio_us_per_request_livecart_over_nginx"] = round(
            lc["median_server_us_per_request"] / ng["median_server_us_per_request"], 2
        )
        out["ratio_cpu_livecart_over_nginx"] = round(
            lc["median_server_cpu_pct"] / ng["median_server_cpu_pct"], 2
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30, help="measured window per arm and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--arms", default="livecart,nginx")
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--drain", type=float, default=5)
    parser.add_argument("--poll-ms", type=float, default=20, help="nginx players' playlist poll interval")
    parser.add_argument("--gen-procs", type=int, default=1)
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--gen-cpus", default="1", help="generator, tap and publisher")
    parser.add_argument("--nginx-workers", default="1")
    parser.add_argument("--wait-quiet", type=float, default=120, help="before each arm, up to S s (0: no)")
    parser.add_argument("--profile", type=Path, help="py-spy (raw, nonblocking) of livecart per round, here")
    parser.add_argument("--json", type=Path, help="also write every row here")
    args = parser.parse_args()
    arms = [a for a in args.arms.split(",") if a]
    if not arms or any(a not in ("livecart", "nginx") for a in arms):
        parser.error("--arms: livecart and/or nginx")
    nginx_bin = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if "nginx" in arms and nginx_bin is None:
        sys.exit(
            "nginx is not installed: apt-get install -y nginx (Debian's package; its service is not used)"
        )

    import camera  # bench/: numpy and PyAV, only here
    import relay

    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
            if line.startswith("Model name")
        ),
        "?",
    )
    running = Running()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hls-load-") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o755)  # nginx's workers (not root) read the docroot below it
        try:
            clip = tmp / "camera.h264"
            info = camera.encode(clip, 640, 480, camera.BITRATE, 10, codec="h264")
            print(
                json.dumps({"bench": "hls_load", "cpu": model, "cores": os.cpu_count(), "clip": info}),
                flush=True,
            )
            server_cpus, gen_cpus = cpus_arg(args.server_cpus), cpus_arg(args.gen_cpus)
            budget = args.rounds * len(arms) * (args.warmup + args.seconds + args.drain + 240) + 600
            proc, whip, _, token = relay.start_livecart(tmp / "data", ROOT)
            running.procs.append(("livecart", proc))
            pin_all_threads(proc.pid, server_cpus)
            base = whip.rsplit("/whip", 1)[0]
            stream_id = base.rsplit("/", 1)[1]
            port = int(base.split("://", 1)[1].split("/", 1)[0].split(":")[1])
            cmd = [PY, SCRIPT, "publish", whip, token, "--clip", str(clip), "--seconds", str(budget)]
            publisher = running.start("publisher", cmd, gen_cpus, stdout=subprocess.PIPE)
            if Lines(publisher, "publisher").next(60) != "PUBLISHING":
                raise RuntimeError("the publisher did not publish")
            docroot = tmp / "docroot"
            docroot.mkdir(mode=0o755)
            tap_log = tmp / "tap.jsonl"
            cmd = [PY, SCRIPT, "tap", f"{base}/hls/", str(docroot), str(tap_log), "--seconds", str(budget)]
            tap = running.start("tap", cmd, gen_cpus, stdout=subprocess.PIPE)
            if Lines(tap, "tap").next(60) != "TAPPING":
                raise RuntimeError("the tap did not start")
            nginx, nginx_port = None, 0
            if "nginx" in arms:
                assert nginx_bin is not None
                nginx_port = free_port()
                conf = nginx_conf(tmp, docroot, nginx_port, args.nginx_workers)
                nginx = running.start(
                    "nginx",
                    [nginx_bin, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf)],
                    server_cpus,
                )
                wait_port(nginx_port, 20)
                running.extra += children(nginx.pid)
            deadline = time.monotonic() + 60  # steady state: two segments cut and copied
            while len(read_tap(tap_log)) < 20:
                if time.monotonic() > deadline:
                    raise RuntimeError("the stream did not reach two segments in 60 s")
                time.sleep(0.5)
            ctx = Context(
                args,
                running,
                tmp,
                proc,
                port,
                stream_id,
                publisher,
                tap,
                tap_log,
                nginx,
                nginx_port,
                time.time() - time.monotonic(),
            )
            for round_no in range(1, args.rounds + 1):
                for arm in arms if round_no % 2 else arms[::-1]:
                    row = run_arm(ctx, arm, round_no)
                    row["cpu"] = model
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    time.sleep(2)
            final = summary(rows, arms)
            final["cpu"] = model
            print(json.dumps(final), flush=True)
            if args.json:
                args.json.write_text(json.dumps({"rows": rows, "summary": final}, indent=1))
        finally:
            running.stop_all()


def cli() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "gen":
        parser = argparse.ArgumentParser()
        parser.add_argument("mode_", choices=["gen"])
        parser.add_argument("--mode", choices=["block", "poll"], required=True)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--prefix", required=True)
        parser.add_argument("--clients", type=int, required=True)
        parser.add_argument("--poll-ms", type=float, default=20)
        parser.add_argument("--out", required=True)
        args = parser.parse_args()
        if args.host != "127.0.0.1":
            sys.exit("loopback only")
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        asyncio.run(run_generator(args))
    elif len(sys.argv) > 1 and sys.argv[1] == "tap":
        parser = argparse.ArgumentParser()
        parser.add_argument("mode_", choices=["tap"])
        parser.add_argument("base")
        parser.add_argument("docroot", type=Path)
        parser.add_argument("log", type=Path)
        parser.add_argument("--seconds", type=float, default=3600)
        args = parser.parse_args()
        if not args.base.startswith("http://127.0.0.1:"):
            sys.exit("loopback only")
        asyncio.run(run_tap(args.base, args.docroot, args.log, args.seconds))
    elif len(sys.argv) > 1 and sys.argv[1] == "publish":
        parser = argparse.ArgumentParser()
        parser.add_argument("mode_", choices=["publish"])
        parser.add_argument("whip")
        parser.add_argument("token")
        parser.add_argument("--clip", type=Path, required=True)
        parser.add_argument("--seconds", type=float, default=3600)
        args = parser.parse_args()
        if not args.whip.startswith("http://127.0.0.1:"):
            sys.exit("loopback only")
        asyncio.run(run_publisher(args.whip, args.token, args.clip, args.seconds))
    else:
        main()


if __name__ == "__main__":
    cli()
