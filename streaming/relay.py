"""The relay core: a publisher's encoded frames, packetized once, queued to every viewer.

One `Feed` per kind (audio, video) of a stream. Its pump reads the publisher's received
track (encoded `av.Packet`s, see streaming/hooks.py), turns each frame into RTP payloads
once, and hands the same `RelayFrame` to every viewer's `ViewerTrack`. A viewer connected
through WHEP has a `hooks_send.DirectSender`: the pump sends it the frame's packets right away
(per packet one header `struct.pack` and SRTP; a frame's datagrams in one system call where
the kernel can; no task wake-up per viewer). A
track without one (none in the server today) queues frames for its RTCRtpSender to read.

A viewer's queue is bounded: a video viewer that falls behind loses its backlog and waits
for the next keyframe (asking the publisher for one), so it shows a current picture again
rather than a growing delay. Keyframe requests from all viewers are coalesced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import av
from aiortc.codecs import get_encoder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from core.logs import log
from streaming import hooks_send

logger = logging.getLogger("livecart.relay")

KEYFRAME_INTERVAL_S = 0.5
MAX_QUEUED = {"video": 60, "audio": 50}  # about 2 s of video at 30 fps, 1 s of 20 ms audio


@dataclass(slots=True)
class RelayFrame:
    """One encoded frame as RTP payloads, shared by every viewer (read-only)."""

    payloads: list[bytes]
    timestamp: int
    keyframe: bool
    octets: int = 0
    # header extension block per (extension ids, mid) of the viewers: built once per frame
    ext_cache: dict[bytes, bytes] = field(default_factory=dict)


class KeyframeRequests:
    """At most one keyframe request per `interval`; a request inside the interval is sent
    when it ends, never dropped."""

    def __init__(self, send: Callable[[], Awaitable[None]], interval: float = KEYFRAME_INTERVAL_S) -> None:
        self._send = send
        self._interval = interval
        self._last = -interval
        self._pending: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0

    def retarget(self, send: Callable[[], Awaitable[None]]) -> None:
        self._send = send

    def request(self) -> None:
        if self._pending is not None:
            return
        wait = self._last + self._interval - time.monotonic()
        if wait <= 0:
            self._fire()
        else:
            self._pending = asyncio.get_running_loop().call_later(wait, self._fire)

    def _fire(self) -> None:
        self._pending = None
        self._last = time.monotonic()
        self.sent += 1
        task = asyncio.ensure_future(self._send_logged())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_logged(self) -> None:
        try:
            await self._send()
        except (ConnectionError, OSError) as exc:
            log(logger, logging.DEBUG, "keyframe request not sent", error=str(exc))

    async def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


class ViewerTrack(MediaStreamTrack):
    """What one viewer's sender reads: the feed's frames from the first keyframe after `start`."""

    def __init__(self, feed: Feed) -> None:
        super().__init__()
        self.kind = feed.kind
        self._feed = feed
        self._queue: deque[RelayFrame] = deque()
        self._limit = MAX_QUEUED.get(feed.kind, 60)
        self._waiter: asyncio.Future[None] | None = None
        self._active = False
        self._need_keyframe = feed.kind == "video"
        self.skips = 0
        self.direct: hooks_send.DirectSender | None = None

    def start(self) -> None:
        """The viewer is connected: take frames from the next keyframe on, and ask for one."""
        self._active = True
        if self._need_keyframe:
            self._feed.keyframes.request()

    def push(self, frame: RelayFrame, abs_send_time: int = 0, ntp_time: int = 0) -> None:
        if not self._active:
            return
        direct = self.direct
        if direct is not None and not direct.ready():
            return  # its sender has not started yet (keeps waiting for a keyframe)
        if self._need_keyframe:
            if not frame.keyframe:
                return
            self._need_keyframe = False
        if direct is not None:
            if direct.behind():
                # The socket would block and its buffer is full: drop this frame and, for video,
                # the rest until the next keyframe (as a full queue does below).
                self.skips += 1
                if self.kind == "video":
                    self._need_keyframe = True
                    self._feed.keyframes.request()
                return
            try:
                direct.send(frame, abs_send_time, ntp_time)
            except Exception as exc:  # one viewer's failure must not stop the feed for the others
                log(logger, logging.DEBUG, "frame not sent", error=repr(exc))
            return
        queue = self._queue
        if len(queue) >= self._limit:
            self.skips += 1
            if self.kind == "video":
                # Behind by the whole queue: drop the backlog, resume at the next keyframe.
                queue.clear()
                if not frame.keyframe:
                    self._need_keyframe = True
                    self._feed.keyframes.request()
                    return
            else:
                queue.popleft()
        queue.append(frame)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def recv(self) -> RelayFrame:  # type: ignore[override]
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._queue.popleft()

    def stop(self) -> None:
        super().stop()
        self._feed.viewers.discard(self)
        if self.direct is not None:
            self.direct.close()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Feed:
    """One kind of media of a stream: the publisher's codec and the viewers' tracks."""

    def __init__(
        self, kind: str, codec: RTCRtpCodecParameters, keyframes: KeyframeRequests | None = None
    ) -> None:
        self.kind = kind
        self.codec = codec
        # whom to ask for a keyframe: nobody until a publisher's track is followed
        self.keyframes = keyframes or KeyframeRequests(_nobody)
        self.viewers: set[ViewerTrack] = set()
        # aiortc's own packetizer (VP8 descriptor, H264 FU-A/STAP-A), run once per frame.
        self._packer = get_encoder(codec) if kind == "video" else None
        self.frames = 0
        # Who else reads each frame as it came (data, RTP timestamp, keyframe): the HLS segmenter.
        self.taps: list[Callable[[bytes, int, bool], None]] = []
        self._task: asyncio.Task[None] | None = None

    def same_codec(self, codec: RTCRtpCodecParameters) -> bool:
        return (
            codec.mimeType.lower() == self.codec.mimeType.lower()
            and codec.clockRate == self.codec.clockRate
            and codec.parameters == self.codec.parameters
        )

    def track(self) -> ViewerTrack:
        viewer = ViewerTrack(self)
        self.viewers.add(viewer)
        return viewer

    def follow(self, source: MediaStreamTrack, request_keyframe: Callable[[], Awaitable[None]]) -> None:
        """Read frames from a (new) publisher track; the old one, if any, is let go."""
        self.keyframes.retarget(request_keyframe)
        if self._task is not None:
            self._task.cancel()
        self._task = asyncio.ensure_future(self._pump(source))

    async def _pump(self, source: MediaStreamTrack) -> None:
        packer = self._packer
        try:
            while True:
                packet = cast("av.Packet[Any]", await source.recv())  # hooks.PassthroughDecoder's output
                if packer is not None:
                    payloads, timestamp = packer.pack(packet)
                    keyframe = bool(packet.is_keyframe)
                else:  # audio: one packet per frame, the payload as received
                    payloads = [bytes(packet)]
                    timestamp = packet.pts or 0  # already in 1/clock rate
                    keyframe = True
                if self.taps:
                    self._tap(bytes(packet), packet.pts or 0, keyframe)
                frame = RelayFrame(payloads, timestamp, keyframe, sum(map(len, payloads)))
                self.frames += 1
                ntp_time = hooks_send.ntp_now()
                abs_send_time = hooks_send.abs_send_time(ntp_time)
                for viewer in self.viewers:
                    viewer.push(frame, abs_send_time, ntp_time)
        except MediaStreamError:
            pass  # the publisher's track ended

    def _tap(self, data: bytes, timestamp: int, keyframe: bool) -> None:
        for tap in self.taps:
            try:
                tap(data, timestamp, keyframe)
            except Exception as exc:  # a reader's failure must not stop the relay
                log(logger, logging.WARNING, "frame reader failed", kind=self.kind, error=repr(exc))

    async def close(self) -> None:
        self.taps.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for viewer in list(self.viewers):
            viewer.stop()
        await self.keyframes.close()


async def _nobody() -> None:
    return None
