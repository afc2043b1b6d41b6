"""Low-Latency HLS of a live stream, cut from the relay's encoded frames (no decode, no encode).

Each H.264 stream this node relays gets a `LiveHls`: the video feed's frames (Annex B, as the
publisher sent them) and the audio feed's Opus packets become CMAF fMP4 (streaming/fmp4.py):
parts of ~`PART_TARGET_S` (cut on frame boundaries), segments of ~`SEGMENT_TARGET_S` that start
with a keyframe (the relay asks the publisher for one as a segment nears its target), and an
LL-HLS media playlist (RFC 8216bis: `EXT-X-PART`, `EXT-X-PRELOAD-HINT`, `EXT-X-SERVER-CONTROL`
with blocking reload, `EXT-X-PROGRAM-DATE-TIME`). A segment's bytes are its parts' bytes in order.

Audio and video keep their own RTP clocks; both are placed on the stream's timeline by when
their first frame arrived (after the first keyframe), which is as close as arrival can tell.
A clock that jumps (a new publisher after a drop) is re-anchored after the last sample.

Blocking requests (`_HLS_msn`/`_HLS_part`, and a part asked for before it exists) wait for it
up to three target durations (then 503, as the spec advises), and at most `MAX_WAITING` wait
at once per node (more: 503 with Retry-After): a held request costs a future, not a task.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from core.errors import BadRequest, NotFound, Unavailable
from streaming import fmp4
from streaming.recording import Recorder

PART_TARGET_S = 0.25
SEGMENT_TARGET_S = 2.0
WINDOW_SEGMENTS = 8  # complete segments kept (and listed) per stream
PARTS_LISTED = 2  # complete segments whose parts are still listed, besides the open one
MAX_WAITING = 10_000
_NOMINAL = {"video": 3000, "audio": 960}  # a frame's duration when its clock cannot tell
Tap = Callable[[bytes, int, bool], None]  # a feed's frame: data, RTP timestamp, keyframe


@dataclass
class Part:
    index: int
    data: bytes
    duration: float
    independent: bool
    published: float  # time.monotonic()


@dataclass
class Segment:
    msn: int
    started: float  # wall clock (time.time()) of its first frame
    map_id: int = 0  # its init segment: init.mp4, then init1.mp4… after a parameter-set change
    parts: list[Part] = field(default_factory=list)
    complete: bool = False
    data: bytes = b""
    duration: float = 0.0  # its parts' durations added up (kept as each part is cut)


@dataclass
class _Clock:
    """A track's RTP clock placed on the stream's timeline (in the track's timescale)."""

    timescale: int
    origin: int | None = None
    offset: int = 0
    last: int = 0

    def place(self, rtp: int, since_start_s: float, nominal: int) -> int:
        if self.origin is None:
            self.origin, self.offset = rtp, round(since_start_s * self.timescale)
        delta = (rtp - self.origin) & 0xFFFFFFFF
        decode = self.offset + delta
        if decode <= self.last - self.timescale * 10 or decode > self.last + self.timescale * 10:
            # a jump: a new publisher, or a clock that wrapped oddly; carry on after the last
            self.origin, self.offset = rtp, self.last + nominal
            decode = self.offset
        self.last = max(self.last, decode)
        return decode


class _Track:
    def __init__(self, kind: str, timescale: int) -> None:
        self.kind = kind
        self.clock = _Clock(timescale)
        self.pending: tuple[bytes, int, bool] | None = None  # data, decode time, keyframe
        self.samples: list[fmp4.Sample] = []
        self.first_decode: int | None = None  # of `samples`
        self.track: fmp4.Track | None = None  # once the init segment is made

    def push(self, data: bytes, decode: int, keyframe: bool) -> fmp4.Sample | None:
        """Take a frame; give back the previous one, now that its duration is known."""
        finished = None
        if self.pending is not None:
            previous, start, key = self.pending
            duration = decode - start
            if not 0 < duration < self.clock.timescale * 5:
                duration = _NOMINAL[self.kind]
            finished = fmp4.Sample(previous, duration, key)
            if self.first_decode is None:
                self.first_decode = start
            self.samples.append(finished)
        self.pending = (data, decode, keyframe)
        return finished

    def flush(self) -> int:
        """The last frame, at a nominal duration (no frame follows it); its duration."""
        if self.pending is None:
            return 0
        data, start, key = self.pending
        self.pending = None
        if self.first_decode is None:
            self.first_decode = start
        self.samples.append(fmp4.Sample(data, _NOMINAL[self.kind], key))
        return _NOMINAL[self.kind]

    def take(self, until: int | None = None) -> fmp4.Run | None:
        """The samples so far (audio: those that start before `until`) as one run."""
        if self.first_decode is None or self.track is None:
            return None
        cut, position = 0, self.first_decode
        for sample in self.samples:
            if until is not None and position >= until:
                break
            position += sample.duration
            cut += 1
        run = fmp4.Run(self.track, self.first_decode, self.samples[:cut])
        self.samples = self.samples[cut:]
        self.first_decode = position if self.samples else None
        return run


class LiveHls:
    """One stream's segmenter, playlist and waiting requests."""

    def __init__(self, stream_id: str, request_keyframe: Callable[[], None]) -> None:
        self.stream_id = stream_id
        self.unsupported: str | None = None  # the video codec, when it is not H.264
        self.inits: list[bytes] = []  # init segments, one per set of H.264 parameters seen
        self.segments: OrderedDict[int, Segment] = OrderedDict()
        self.has_audio = False
        self.has_video = False  # an H.264 feed is followed
        self.request_keyframe = request_keyframe
        self._video = _Track("video", fmp4.VIDEO_TIMESCALE)
        self._audio = _Track("audio", fmp4.AUDIO_TIMESCALE)
        self._started: float | None = None  # monotonic time of the first keyframe
        self._open: Segment | None = None
        self._part_video = 0  # video ticks in the open part
        self._keyframe_asked = False
        self._fragments = 0
        self._waiters: list[asyncio.Future[None]] = []  # blocking requests, woken by any change
        self.waiting = 0
        self._playlist: bytes | None = None  # rendered once per change, for every reader
        self._target: int | None = None  # the target duration, worked out once per segment
        self.recorder: Recorder | None = None  # the recording, when the node keeps them

    # -- frames in ------------------------------------------------------------------------------
    @property
    def init(self) -> bytes | None:
        return self.inits[0] if self.inits else None

    def video(self, data: bytes, rtp: int, keyframe: bool) -> None:
        now = time.monotonic()
        units = fmp4.nal_units(data)
        new_map = keyframe and self._parameters(units)
        if self._started is None:
            if not self.inits:
                self.request_keyframe()
                return
            self._started = now
        decode = self._video.clock.place(rtp, now - self._started, _NOMINAL["video"])
        finished = self._video.push(fmp4.avc_sample(units), decode, keyframe)
        if finished is not None:
            self._part_video += finished.duration
        segment = self._open
        open_s = segment.duration + self._part_video / fmp4.VIDEO_TIMESCALE if segment else 0.0
        if segment is None or (keyframe and (new_map or open_s >= SEGMENT_TARGET_S * 0.75)):
            if segment is not None:
                self._cut_part()
                self._close_segment()
            self._open = Segment(self._next_msn(), time.time(), len(self.inits) - 1)
            self._keyframe_asked = False
            open_s = 0.0  # the new segment's age: the keyframe it needs is asked for later
        elif self._part_video >= PART_TARGET_S * 0.8 * fmp4.VIDEO_TIMESCALE:
            self._cut_part()
        if not self._keyframe_asked and open_s >= SEGMENT_TARGET_S - 2 * PART_TARGET_S:
            self._keyframe_asked = True
            self.request_keyframe()

    def _parameters(self, units: list[bytes]) -> bool:
        """A keyframe's SPS/PPS: a new init segment when they differ from the last (a publisher
        whose encoder changed resolution, say); whether one was made."""
        sps = next((u for u in units if u[0] & 0x1F == 7), None)
        pps = next((u for u in units if u[0] & 0x1F == 8), None)
        current = self._video.track
        if sps is None or pps is None or (current is not None and (current.sps, current.pps) == (sps, pps)):
            return False
        width, height = fmp4.sps_size(sps)
        self._video.track = fmp4.Track(1, "video", fmp4.VIDEO_TIMESCALE, width, height, sps, pps)
        if self.has_audio and self._audio.track is None:
            self._audio.track = fmp4.Track(2, "audio", fmp4.AUDIO_TIMESCALE)
        tracks = [t for t in (self._video.track, self._audio.track) if t is not None]
        self.inits.append(fmp4.init_segment(tracks))
        if self.recorder is not None:
            self.recorder.init(len(self.inits) - 1, self.inits[-1])
        return True

    def audio(self, data: bytes, rtp: int, keyframe: bool) -> None:
        if self._started is None or self._audio.track is None:
            return
        decode = self._audio.clock.place(rtp, time.monotonic() - self._started, _NOMINAL["audio"])
        self._audio.push(data, decode, True)

    # -- parts and segments --------------------------------------------------------------------
    def _next_msn(self) -> int:
        return next(reversed(self.segments)) + 1 if self.segments else 0

    def _cut_part(self) -> None:
        segment = self._open
        video = self._video.take()
        if segment is None or video is None or not video.samples:
            return
        end = video.decode_time + sum(s.duration for s in video.samples)
        until = end * fmp4.AUDIO_TIMESCALE // fmp4.VIDEO_TIMESCALE
        runs = [video]
        audio = self._audio.take(until)
        if audio is not None:
            runs.append(audio)
        self._fragments += 1
        data = fmp4.fragment(self._fragments, runs)
        duration = (end - video.decode_time) / fmp4.VIDEO_TIMESCALE
        segment.parts.append(
            Part(len(segment.parts), data, duration, video.samples[0].keyframe, time.monotonic())
        )
        segment.duration += duration
        if len(segment.parts) == 1:
            self.segments[segment.msn] = segment
        self._part_video = 0
        self._wake()

    def _close_segment(self) -> None:
        segment = self._open
        if segment is None or not segment.parts:
            return
        segment.complete = True
        segment.data = b"".join(part.data for part in segment.parts)
        self._target = None
        if self.recorder is not None:
            self.recorder.segment(
                segment.msn, segment.duration, segment.started, segment.map_id, segment.data
            )
        while sum(s.complete for s in self.segments.values()) > WINDOW_SEGMENTS:
            self.segments.popitem(last=False)
        self._wake()

    def _wake(self) -> None:
        self._playlist = None
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- what clients read ---------------------------------------------------------------------
    def target_duration(self) -> int:
        if self._target is None:  # once per segment, not per request
            longest = max((s.duration for s in self.segments.values() if s.complete), default=0.0)
            self._target = max(math.ceil(SEGMENT_TARGET_S), round(longest + 0.499))
        return self._target

    def has(self, msn: int, part: int | None) -> bool:
        segment = self.segments.get(msn)
        if segment is not None and (segment.complete or (part is not None and len(segment.parts) > part)):
            return True
        return bool(self.segments) and next(reversed(self.segments)) > msn  # a later one exists

    async def started(self) -> None:
        """Hold until the first part exists (a publisher's first keyframe), bounded."""
        await self.wait_for(0, 0, check_far=False)

    async def wait_for(self, msn: int, part: int | None, *, check_far: bool = True) -> None:
        """Hold until the playlist has segment `msn` (part `part` of it): bounded in time and count."""
        last = next(reversed(self.segments)) if self.segments else -1
        if check_far and msn > last + 2:
            raise BadRequest("_HLS_msn is too far in the future", code="hls_msn_too_far")
        if self.has(msn, part):
            return
        if self.waiting >= MAX_WAITING:
            raise Unavailable("too many blocking playlist requests; try again", code="hls_busy")
        deadline = time.monotonic() + 3 * max(SEGMENT_TARGET_S, self.target_duration())
        self.waiting += 1
        try:
            while not self.has(msn, part):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Unavailable("the playlist did not get there in time", code="hls_timeout")
                # A future of its own: a request that times out cancels only its own wait.
                waiter = asyncio.get_running_loop().create_future()
                if len(self._waiters) > 2 * self.waiting:  # those that timed out while nothing changed
                    self._waiters = [w for w in self._waiters if not w.done()]
                self._waiters.append(waiter)
                async with asyncio.timeout(left):
                    await waiter
        except TimeoutError:
            raise Unavailable("the playlist did not get there in time", code="hls_timeout") from None
        finally:
            self.waiting -= 1

    def playlist(self) -> bytes:
        if self._playlist is None:
            self._playlist = self._render().encode()
        return self._playlist

    def _render(self) -> str:
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:6",
            f"#EXT-X-TARGETDURATION:{self.target_duration()}",
            f"#EXT-X-PART-INF:PART-TARGET={PART_TARGET_S:.3f}",
            f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={3 * PART_TARGET_S:.3f}",
            f"#EXT-X-MEDIA-SEQUENCE:{next(iter(self.segments), 0)}",
        ]
        map_id = -1
        msns = list(self.segments)
        listed_from = msns[-PARTS_LISTED - 1] if len(msns) > PARTS_LISTED else 0
        for msn, segment in self.segments.items():
            if segment.map_id != map_id:
                map_id = segment.map_id
                lines.append(f'#EXT-X-MAP:URI="{init_name(map_id)}"')
            when = datetime.fromtimestamp(segment.started, UTC).isoformat(timespec="milliseconds")
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{when.replace('+00:00', 'Z')}")
            if msn >= listed_from:
                for part in segment.parts:
                    independent = ",INDEPENDENT=YES" if part.independent else ""
                    lines.append(
                        f'#EXT-X-PART:DURATION={part.duration:.3f},URI="part{msn}.{part.index}.m4s"{independent}'
                    )
            if segment.complete:
                lines += [f"#EXTINF:{segment.duration:.3f},", f"seg{msn}.m4s"]
        if msns:
            last = self.segments[msns[-1]]
            msn, index = (last.msn + 1, 0) if last.complete else (last.msn, len(last.parts))
            lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part{msn}.{index}.m4s"')
        return "\n".join(lines) + "\n"

    async def media(self, name: str) -> bytes:
        """init(n).mp4, seg{msn}.m4s or part{msn}.{index}.m4s; the next part is waited for."""
        for map_id, init in enumerate(self.inits):
            if name == init_name(map_id):
                return init
        msn, index = _media_name(name)
        if index is not None:
            segment = self.segments.get(msn)
            if segment is None or index >= len(segment.parts):
                await self.wait_for(msn, index)  # the preload hint's part, asked for early
                segment = self.segments.get(msn)
            if segment is not None and index < len(segment.parts):
                return segment.parts[index].data
        else:
            segment = self.segments.get(msn)
            if segment is not None and segment.complete:
                return segment.data
        raise NotFound(f"no {name} in this stream's window", code="hls_not_found")

    def close(self) -> None:
        """The stream ended: its last frames make a last segment, and waiting requests end."""
        if self._open is not None:
            self._part_video += self._video.flush()
            self._audio.flush()
        self._cut_part()
        self._close_segment()
        self._open = None
        self._wake()


def init_name(map_id: int) -> str:
    return "init.mp4" if map_id == 0 else f"init{map_id}.mp4"


def _media_name(name: str) -> tuple[int, int | None]:
    try:
        if name.startswith("seg") and name.endswith(".m4s"):
            return int(name[3:-4]), None
        if name.startswith("part") and name.endswith(".m4s"):
            msn, index = name[4:-4].split(".")
            return int(msn), int(index)
    except ValueError:
        pass
    raise NotFound(f"no {name} here", code="hls_not_found")
