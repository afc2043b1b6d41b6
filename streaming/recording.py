"""A live stream's recording: the LL-HLS segments themselves, kept, and a VOD playlist at the end.

The segmenter (streaming/hls.py) hands each complete segment (and the init segment) to the
stream's `Recorder`, which writes them in order through a `RecordingStore`; when the stream
ends the last segment is closed and `replay.m3u8` (a VOD playlist: `EXT-X-PLAYLIST-TYPE:VOD`,
`EXT-X-ENDLIST`, each segment with its program date-time) is written last, so a recording with
a playlist is complete. The store is a small protocol: files under the data directory today
(`FileRecordings`), object storage later. Recordings older than the retention are removed by a
chore (`sweep`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple, Protocol

import orjson

from core.logs import log
from streaming import timeline as timeline_file
from streaming.timeline import Timeline

logger = logging.getLogger("livecart.recording")

PLAYLIST = "replay.m3u8"
INDEX = "index.json"  # the recording's segments so far, across the show's runs
_NAME = re.compile(r"^(init\d{0,9}\.mp4|seg\d{1,9}\.m4s|replay\.m3u8|timeline\.json|index\.json)$")
_STREAM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_PENDING = 64  # segments waiting to be written before the recorder drops (and says so)


class RecordingStore(Protocol):
    async def write(self, stream_id: str, name: str, data: bytes) -> None: ...

    async def read(self, stream_id: str, name: str) -> bytes | None: ...

    async def remove(self, stream_id: str) -> None: ...

    async def finished_before(self, cutoff: float) -> list[str]:
        """Streams whose recording was completed before `cutoff` (Unix seconds)."""
        ...


def valid(stream_id: str, name: str) -> bool:
    return bool(_STREAM.match(stream_id) and _NAME.match(name))


class FileRecordings:
    """`<root>/<stream id>/<name>`, each file written whole (a temporary name, then renamed)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, stream_id: str, name: str) -> Path:
        if not valid(stream_id, name):
            raise ValueError(f"not a recording file: {stream_id}/{name}")
        return self.root / stream_id / name

    async def write(self, stream_id: str, name: str, data: bytes) -> None:
        path = self._path(stream_id, name)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            part = path.with_suffix(path.suffix + ".part")
            part.write_bytes(data)
            os.replace(part, path)

        await asyncio.to_thread(write)

    async def read(self, stream_id: str, name: str) -> bytes | None:
        if not valid(stream_id, name):
            return None
        path = self._path(stream_id, name)

        def read() -> bytes | None:
            try:
                return path.read_bytes()
            except FileNotFoundError:
                return None

        return await asyncio.to_thread(read)

    async def remove(self, stream_id: str) -> None:
        if _STREAM.match(stream_id):
            await asyncio.to_thread(shutil.rmtree, self.root / stream_id, True)

    async def finished_before(self, cutoff: float) -> list[str]:
        def scan() -> list[str]:
            if not self.root.is_dir():
                return []
            old = []
            for folder in self.root.iterdir():
                with contextlib.suppress(OSError):
                    if (folder / PLAYLIST).stat().st_mtime < cutoff:
                        old.append(folder.name)
            return old

        return await asyncio.to_thread(scan)


class Recorded(NamedTuple):
    """One segment of a recording: its number (in the recording, across the show's runs), its
    duration and wall-clock start, its init segment's number, and which run of the show made it
    (a node restarting mid-show, or another node taking the show, starts a new run)."""

    n: int
    duration: float
    started: float
    map_id: int
    run: int


def vod_playlist(segments: list[Recorded]) -> str:
    """The recording as one VOD playlist; a new run starts after an EXT-X-DISCONTINUITY (its
    timestamps start again)."""
    target = max(1, math.ceil(max((s.duration for s in segments), default=1.0)))
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:6",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        f"#EXT-X-MEDIA-SEQUENCE:{segments[0].n if segments else 0}",
    ]
    last_map = last_run = -1
    for segment in segments:
        if last_run not in (-1, segment.run):
            lines.append("#EXT-X-DISCONTINUITY")
        if segment.map_id != last_map or segment.run != last_run:
            last_map = segment.map_id
            lines.append(f'#EXT-X-MAP:URI="{init_name(segment.map_id)}"')
        last_run = segment.run
        when = datetime.fromtimestamp(segment.started, UTC).isoformat(timespec="milliseconds")
        lines += [
            f"#EXT-X-PROGRAM-DATE-TIME:{when.replace('+00:00', 'Z')}",
            f"#EXTINF:{segment.duration:.3f},",
            f"seg{segment.n}.m4s",
        ]
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def init_name(map_id: int) -> str:
    return "init.mp4" if map_id == 0 else f"init{map_id}.mp4"


class Recorder:
    """One stream's writer: files go out one at a time, in order, off the relay's path.

    A run of the show numbers its segments and init segments from 0; the recorder writes them
    after what earlier runs of the same show left in the store (`index.json`, kept after each
    run), so a show whose node restarted, or that another node sharing the store took over, has
    one recording and one replay."""

    def __init__(self, store: RecordingStore, stream_id: str, timeline: Timeline | None = None) -> None:
        self._store = store
        self.stream_id = stream_id
        self.segments: list[Recorded] = []  # the whole recording's, once the writer has read the index
        # (what, its number in this run, its init segment's, bytes, duration, wall-clock start)
        self._queue: asyncio.Queue[tuple[str, int, int, bytes, float, float] | None] = asyncio.Queue()
        self._task = asyncio.ensure_future(self._write_all())
        self.dropped = 0
        self.timeline = timeline
        self._poller = asyncio.ensure_future(self._poll()) if timeline is not None else None
        self._complete = False

    async def _poll(self) -> None:
        while self.timeline is not None:
            await asyncio.sleep(timeline_file.POLL_S)
            await self._catch_up()

    async def _catch_up(self) -> None:
        assert self.timeline is not None
        try:
            await self.timeline.catch_up()
        except Exception as exc:  # the broker is down: read again next time
            log(logger, logging.WARNING, "timeline not read", stream=self.stream_id, error=repr(exc))

    def init(self, map_id: int, data: bytes) -> None:
        self._put("init", map_id, data)

    def segment(self, msn: int, duration: float, started: float, map_id: int, data: bytes) -> None:
        self._put("seg", msn, data, duration, started, map_id)

    def _put(
        self,
        kind: str,
        number: int,
        data: bytes,
        duration: float = 0.0,
        started: float = 0.0,
        map_id: int = 0,
    ) -> None:
        if self._queue.qsize() >= MAX_PENDING:
            self.dropped += 1  # the disk cannot keep up: the recording skips it, the show goes on
            log(logger, logging.WARNING, "recording behind: dropped", stream=self.stream_id, kind=kind)
            return
        self._queue.put_nowait((kind, number, map_id, data, duration, started))

    async def finish(self, *, complete: bool = True) -> None:
        """Write what is queued and the recording's index; then, for a show that is over, the
        timeline and the VOD playlist (only with a segment)."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if complete and self.timeline is not None:
            await self._catch_up()
        self._complete = complete
        self._queue.put_nowait(None)
        await self._task

    async def _earlier(self) -> tuple[list[Recorded], int, int, int]:
        """What earlier runs of this show recorded: their segments, and where this run's segment
        numbers, init numbers and run number start."""
        raw = await self._store.read(self.stream_id, INDEX)
        try:
            earlier = [Recorded(*row) for row in orjson.loads(raw)] if raw else []
        except (orjson.JSONDecodeError, TypeError, ValueError):
            log(logger, logging.ERROR, "recording index unreadable: a new one starts", stream=self.stream_id)
            earlier = []
        if not earlier:
            return [], 0, 0, 0
        last = earlier[-1]
        return earlier, max(s.n for s in earlier) + 1, max(s.map_id for s in earlier) + 1, last.run + 1

    async def _write_all(self) -> None:
        try:
            self.segments, seg_base, map_base, run = await self._earlier()
        except OSError as exc:
            log(logger, logging.ERROR, "recording index not read", stream=self.stream_id, error=str(exc))
            seg_base = map_base = run = 0
        while (item := await self._queue.get()) is not None:
            kind, number, map_id, data, duration, started = item
            if kind == "init":
                name = init_name(map_base + number)
            else:
                name = f"seg{seg_base + number}.m4s"
                recorded = Recorded(seg_base + number, duration, started, map_base + map_id, run)
            if await self._write(name, data) and kind == "seg":
                self.segments.append(recorded)
        if self.segments:
            await self._write(INDEX, orjson.dumps([list(s) for s in self.segments]))
            if self._complete:
                if self.timeline is not None:
                    await self._write(timeline_file.FILE, self.timeline.encode(self.segments))
                await self._write(PLAYLIST, vod_playlist(self.segments).encode())

    async def _write(self, name: str, data: bytes) -> bool:
        try:
            await self._store.write(self.stream_id, name, data)
        except (OSError, ValueError) as exc:
            log(
                logger,
                logging.ERROR,
                "recording not written",
                stream=self.stream_id,
                name=name,
                error=str(exc),
            )
            return False
        return True


async def sweep(store: RecordingStore, retention_s: float) -> int:
    """Remove the recordings completed more than `retention_s` ago; how many went."""
    old = await store.finished_before(time.time() - retention_s)
    for stream_id in old:
        await store.remove(stream_id)
    if old:
        log(logger, logging.INFO, "old recordings removed", count=len(old))
    return len(old)
