"""VP8 → H.264 for LL-HLS: one decode and one encode per stream, off the event loop.

HLS players take H.264; a browser may publish VP8. With `hls_transcode_vp8` on, a VP8 stream's
video feed has one `Transcoder`: the relay's tap queues each encoded frame (an append on the
event loop), one worker thread decodes it (FFmpeg's vp8) and encodes it with libx264, and each
access unit goes back to the loop (`call_soon_threadsafe`) into the stream's `LiveHls` with the
source frame's RTP timestamp, as the relay's H.264 frames do. The HLS audience and the recording
share that one encode; WebRTC viewers still get the publisher's own VP8 frames.

The encoder: constrained baseline (every HLS player decodes it), `tune=zerolatency` (no
B-frames, no lookahead: a picture's access unit comes out as the picture goes in), and
`preset=veryfast` rather than ultrafast: it keeps the deblocking filter and a real motion
search, about 1 dB PSNR more on a camera-like 640x480 picture at 2 Mbit/s (which a product's
texture shows), for about 18% of a core per 30 fps stream, decode included, against 11%; and it
is paid once per stream, not per viewer. One encoder thread: a stream costs at most one core.
An IDR (x264 writes SPS/PPS before each, which LiveHls makes its init segment from) when the
segmenter asks (`request_keyframe`; deferred until the GOP is `MIN_GOP_S` old) and at least
every `MAX_GOP_S` of source time; the source's own keyframes are not copied. The bitrate is the
source's, measured over `RATE_WINDOW_S`; the encoder is opened anew at an IDR when the source's
rate has moved by more than `RATE_DRIFT` (x264 does not retune ABR in place).

Falling behind: at most `MAX_QUEUED` frames wait for the worker. A VP8 inter frame refers to
the frames before it, so no frame is dropped alone: past the bound, that frame and every one
after it is dropped until the next VP8 keyframe, asked of the publisher (the relay's requests
are coalesced), and the stale backlog goes when that keyframe comes. A frame the decoder refuses
does the same. The H.264 side stays valid throughout: its encoder keeps its own references, the
picture only pauses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType

from core.logs import log
from streaming import hls
from streaming.hls import Tap

logger = logging.getLogger("livecart.transcode")

PRESET = "veryfast"
MAX_QUEUED = 8  # VP8 frames waiting for the worker: about a quarter of a second at 30 fps
MAX_GOP_S = 2.0
# The segmenter asks for a keyframe once a segment is this old and cuts at the next one. A
# request in a younger GOP (a viewer's player, say) waits until the GOP is this old (and a frame
# more, so the segment's own sum of durations is past it too): one IDR per segment, each where
# the segmenter cuts.
MIN_GOP_S = hls.SEGMENT_TARGET_S - 2 * hls.PART_TARGET_S
RATE_WINDOW_S = 2.0
RATE_DRIFT = 0.3
MIN_BIT_RATE, MAX_BIT_RATE = 150_000, 8_000_000
STOP_TIMEOUT_S = 2.0
REASK_S = 1.0  # still waiting for the publisher's keyframe after this long: ask again
CLOCK = 90_000  # the RTP video clock
_NOMINAL_FPS = 30  # for x264's level and VBV sums; its rate control follows the timestamps
_TIME_BASE = Fraction(1, CLOCK)
_Frame = tuple[bytes, int]  # VP8 data, RTP timestamp


class Transcoder:
    """One stream's VP8 → H.264: `push` is its tap on the relay's VP8 feed, `out` (on the loop)
    gets the H.264 access units; `request_keyframe` asks the encoder for an IDR."""

    def __init__(self, stream_id: str, out: Tap, ask_publisher: Callable[[], None]) -> None:
        self.stream_id = stream_id
        self._out = out
        self._ask_publisher = ask_publisher  # for a VP8 keyframe (on the loop)
        self._loop = asyncio.get_running_loop()
        self._queue: deque[_Frame] = deque()
        self._lock = threading.Condition()
        self._need_keyframe = True  # the decoder starts at a keyframe
        self._asked = -REASK_S
        self._stopping = False
        self._drain = True
        self._detached = False  # nothing more goes out
        self._idr = False  # an IDR is asked for (see MIN_GOP_S)
        self._finished: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, name=f"hls-transcode-{stream_id}", daemon=True)
        # the source's bitrate (loop side): bytes over a window of RTP time
        self._window: tuple[int, int] | None = None  # first RTP timestamp, bytes
        self.source_bit_rate = 0
        self.dropped = 0  # VP8 frames not transcoded (behind, or waiting for a keyframe)
        self.errors = 0  # VP8 frames the decoder refused
        self.failures = 0  # frames lost to anything else (an encoder that would not open, say)
        self.frames = 0  # H.264 access units handed out
        # worker side
        self._decoder: VideoCodecContext | None = None
        self._encoder: VideoCodecContext | None = None
        self._bit_rate = 0
        self._last: tuple[int, int] | None = None  # RTP timestamp, pts of the last picture
        self._last_idr = 0

    def start(self) -> None:
        self._thread.start()

    # -- on the event loop ---------------------------------------------------------------------
    def push(self, data: bytes, rtp: int, keyframe: bool) -> None:
        """A VP8 frame from the relay: queued for the worker, or dropped (see the module)."""
        self._measure(len(data), rtp)
        with self._lock:
            if self._stopping:
                return
            if keyframe and (self._need_keyframe or len(self._queue) >= MAX_QUEUED):
                self.dropped += len(self._queue)  # behind: start again from this keyframe
                self._queue.clear()
                self._need_keyframe = False
            if not self._need_keyframe and len(self._queue) < MAX_QUEUED:
                self._queue.append((data, rtp))
                self._lock.notify()
                return
            self.dropped += 1
            self._need_keyframe = True
        now = time.monotonic()
        if now - self._asked >= REASK_S:
            self._asked = now
            self._ask_publisher()

    def request_keyframe(self) -> None:
        """The segmenter's request: the next H.264 access unit is an IDR, or the first one once
        the GOP is `MIN_GOP_S` old. Not the publisher's business: its VP8 is decoded anyway."""
        self._idr = True

    def _measure(self, size: int, rtp: int) -> None:
        if self._window is None:
            self._window = (rtp, 0)
        start, octets = self._window
        span = (rtp - start) & 0xFFFFFFFF
        if span > 10 * CLOCK:  # a jump in the clock (a new publisher): measure afresh
            self._window = (rtp, size)
        elif span >= RATE_WINDOW_S * CLOCK:
            self.source_bit_rate = octets * 8 * CLOCK // span
            self._window = (rtp, size)
        else:
            self._window = (start, octets + size)

    def _deliver(self, data: bytes, rtp: int, keyframe: bool) -> None:
        if self._detached:
            return
        self.frames += 1
        try:
            self._out(data, rtp, keyframe)
        except Exception as exc:  # the segmenter's failure must not stop the transcoder
            log(logger, logging.WARNING, "transcoded frame not taken", stream=self.stream_id, error=repr(exc))

    def _asked_by_worker(self) -> None:
        self._asked = time.monotonic()
        self._ask_publisher()

    def stop(self, *, drain: bool = False) -> None:
        """Let the worker go; with `drain`, after the frames already queued. Waits for nothing:
        what comes out after this without `drain` is dropped."""
        with self._lock:
            self._stopping, self._drain = True, drain
            if not drain:
                self._queue.clear()
            self._lock.notify()
        self._detached = self._detached or not drain

    async def close(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """The stream ended: the queued frames go out, then the worker ends (waited for, bounded)."""
        self.stop(drain=True)
        if self._thread.ident is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._finished), timeout)
            except TimeoutError:
                log(logger, logging.WARNING, "transcoder did not stop in time", stream=self.stream_id)
            else:
                self._thread.join(0.05)  # it has returned from its last frame: a moment at most
        self._detached = True

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # -- the worker thread ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    while not self._queue and not self._stopping:
                        self._lock.wait(1.0)
                    if not self._queue or (self._stopping and not self._drain):
                        return
                    data, rtp = self._queue.popleft()
                try:
                    self._transcode(data, rtp)
                except Exception as exc:  # one bad frame must not end the stream's HLS
                    self._encoder = None  # opened afresh, from an IDR, on the next picture
                    self.failures += 1
                    if self.failures & (self.failures - 1) == 0:  # the 1st, 2nd, 4th...: no flood
                        log(
                            logger,
                            logging.WARNING,
                            "frame not transcoded",
                            stream=self.stream_id,
                            failures=self.failures,
                            error=repr(exc),
                        )
        finally:
            self._encoder = self._decoder = None
            self._call(self._finished_once)

    def _finished_once(self) -> None:
        if not self._finished.done():
            self._finished.set_result(None)

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is left to tell
            self._loop.call_soon_threadsafe(callback, *args)

    def _transcode(self, data: bytes, rtp: int) -> None:
        if self._decoder is None:
            self._decoder = av.CodecContext.create("vp8", "r")
            self._decoder.thread_count = 1  # frame threads would hold pictures back
        try:
            pictures = self._decoder.decode(av.Packet(data))
        except av.FFmpegError:
            self._lost()
            return
        for picture in pictures:
            self._encode(picture, rtp)

    def _lost(self) -> None:
        """The decoder refused a frame: what follows refers to it, so wait for a keyframe."""
        with self._lock:
            self.errors += 1
            self.dropped += len(self._queue)
            self._queue.clear()
            self._need_keyframe = True
        self._call(self._asked_by_worker)

    def _encode(self, picture: av.VideoFrame, rtp: int) -> None:
        width, height = picture.width & ~1, picture.height & ~1  # 4:2:0 wants even sizes
        if picture.format.name != "yuv420p" or (width, height) != (picture.width, picture.height):
            picture = picture.reformat(width=width, height=height, format="yuv420p")
        pts = self._pts(rtp)
        encoder = self._encoder
        age = pts - self._last_idr
        due = (self._idr and age > MIN_GOP_S * CLOCK + CLOCK // 100) or age >= MAX_GOP_S * CLOCK
        if encoder is None or (encoder.width, encoder.height) != (width, height) or (due and self._drifted()):
            encoder = self._encoder = self._open(width, height)
        picture.pts, picture.time_base = pts, _TIME_BASE
        picture.pict_type = PictureType.I if due else PictureType.NONE  # not the decoder's type
        # zerolatency: the access unit that comes out is this picture's
        for packet in encoder.encode(picture):
            keyframe = bool(packet.is_keyframe)
            if keyframe:  # asked for or not (a new encoder's first), it answers what was asked
                self._last_idr, self._idr = pts, False
            self._call(self._deliver, bytes(packet), rtp, keyframe)

    def _pts(self, rtp: int) -> int:
        """The RTP timestamp unwrapped and strictly increasing, as x264 wants its pts."""
        if self._last is None:
            pts = 0
        else:
            last_rtp, last_pts = self._last
            delta = (rtp - last_rtp) & 0xFFFFFFFF
            if not 0 < delta <= 10 * CLOCK:  # a new publisher's clock: carry on a frame later
                delta = CLOCK // _NOMINAL_FPS
            pts = last_pts + delta
        self._last = (rtp, pts)
        return pts

    def _drifted(self) -> bool:
        source = self.source_bit_rate
        return source > 0 and abs(_clamp(source) - self._bit_rate) > RATE_DRIFT * self._bit_rate

    def _open(self, width: int, height: int) -> VideoCodecContext:
        rate = _clamp(self.source_bit_rate or width * height * _NOMINAL_FPS // 10)  # ~0.1 bit/pixel
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
        encoder.time_base, encoder.framerate = _TIME_BASE, Fraction(_NOMINAL_FPS)
        encoder.bit_rate = rate
        encoder.gop_size = 10 * _NOMINAL_FPS  # x264's own bound; MAX_GOP_S is kept above
        encoder.thread_count = 1
        encoder.options = {
            "preset": PRESET,
            "tune": "zerolatency",
            "profile": "baseline",  # x264 flags it constrained baseline (profile-level-id 42c0..)
            "forced-idr": "1",
            "maxrate": f"{rate * 3 // 2 // 1000}k",
            "bufsize": f"{rate // 1000}k",  # a second of video: bounded bursts at each IDR
            "x264-params": "scenecut=0",  # IDRs where the segmenter wants them, not elsewhere
        }
        encoder.open()
        self._bit_rate = rate
        return encoder


def available() -> bool:
    """Whether this PyAV build has the decoder and the encoder a transcoder needs."""
    return {"vp8", "libx264"} <= av.codecs_available


def _clamp(bit_rate: int) -> int:
    return max(MIN_BIT_RATE, min(MAX_BIT_RATE, bit_rate))
