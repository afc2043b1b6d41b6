"""aiortc peers for the streaming tests: a publisher with a moving bar and a tone, and viewers
that decode (or only count) what they get. Loopback only: no ICE server, 127.0.0.1 only
(streaming.hooks.install(("127.0.0.1",)) must have run in this process).
"""

from __future__ import annotations

import asyncio
import fractions
import itertools
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

WIDTH, HEIGHT, FPS = 160, 120, 30
BAR = 16
VIDEO_CLOCK = 90000


def bar_frame(index: int) -> av.VideoFrame:
    """A dark picture with a bright vertical bar that moves 4 pixels right per frame."""
    x0 = (index * 4) % (WIDTH - BAR)
    row = bytes([16] * x0 + [235] * BAR + [16] * (WIDTH - BAR - x0))
    frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
    y = frame.planes[0]
    y.update(b"".join(row + bytes(y.line_size - WIDTH) for _ in range(HEIGHT)))
    for plane in frame.planes[1:]:
        plane.update(bytes([128]) * (plane.line_size * plane.height))
    frame.pts = index * (VIDEO_CLOCK // FPS)
    frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
    return frame


def bar_position(frame: av.VideoFrame) -> int:
    """Where the bar is in a decoded picture: the brightest column of the middle row."""
    y = frame.planes[0]
    middle = HEIGHT // 2
    data = bytes(y)[middle * y.line_size : middle * y.line_size + frame.width]
    best = max(range(len(data) - BAR), key=lambda x: sum(data[x : x + BAR]))
    return best


class MovingBar(MediaStreamTrack):
    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._index / FPS
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        frame = bar_frame(self._index)
        self._index += 1
        return frame


class Tone(MediaStreamTrack):
    kind = "audio"
    RATE, SAMPLES = 48000, 960

    def __init__(self, hz: float = 440.0) -> None:
        super().__init__()
        self._hz = hz
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._index * self.SAMPLES / self.RATE
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        first = self._index * self.SAMPLES
        samples = b"".join(
            int(8000 * math.sin(2 * math.pi * self._hz * (first + i) / self.RATE)).to_bytes(
                2, "little", signed=True
            )
            for i in range(self.SAMPLES)
        )
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.SAMPLES)
        frame.planes[0].update(samples)
        frame.sample_rate = self.RATE
        frame.pts = first
        frame.time_base = fractions.Fraction(1, self.RATE)
        self._index += 1
        return frame


def connection() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def offer(pc: RTCPeerConnection) -> str:
    await pc.setLocalDescription(await pc.createOffer())
    assert pc.localDescription is not None
    return pc.localDescription.sdp


async def accept(pc: RTCPeerConnection, answer: str) -> None:
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))


def publisher(video: bool = True, audio: bool = True, video_codec: str | None = None) -> RTCPeerConnection:
    pc = connection()
    if video:
        transceiver = pc.addTransceiver(MovingBar(), direction="sendonly")
        if video_codec is not None:
            from aiortc import RTCRtpSender

            caps = RTCRtpSender.getCapabilities("video").codecs
            transceiver.setCodecPreferences(
                [c for c in caps if video_codec in (c.mimeType, str(c.parameters.get("profile-level-id")))]
            )
    if audio:
        pc.addTransceiver(Tone(), direction="sendonly")
    return pc


def drop_rtp(pc: RTCPeerConnection, fraction: float, seed: int = 7) -> dict[str, int]:
    """Lose `fraction` of the RTP packets this peer sends (after SRTP, as the network would)."""
    transport = pc.getTransceivers()[0].sender.transport
    send = transport._send_rtp
    rng = random.Random(seed)
    counts = {"sent": 0, "dropped": 0}

    async def lossy(data: bytes) -> None:
        is_rtcp = len(data) > 1 and 192 <= data[1] <= 223
        if not is_rtcp:
            counts["sent"] += 1
            if rng.random() < fraction:
                counts["dropped"] += 1
                return
        await send(data)

    transport._send_rtp = lossy  # type: ignore[method-assign]
    return counts


@dataclass
class Received:
    """What a viewer got: decoded frames with their arrival time and bar position."""

    started: float = field(default_factory=time.monotonic)
    video: list[tuple[float, int]] = field(default_factory=list)  # (arrival, bar x)
    audio: int = 0
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def first_frame_after(self, t: float) -> float | None:
        for arrival, _ in self.video:
            if arrival >= t:
                return arrival - t
        return None

    def longest_gap(self, since: float) -> float:
        times = [since] + [a for a, _ in self.video if a >= since]
        return max((b - a for a, b in itertools.pairwise(times)), default=float("inf"))


def viewer(audio: bool = True, video: bool = True) -> tuple[RTCPeerConnection, Received]:
    pc = connection()
    got = Received()
    if video:
        pc.addTransceiver("video", direction="recvonly")
    if audio:
        pc.addTransceiver("audio", direction="recvonly")

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        got.tasks.append(asyncio.ensure_future(_consume(track, got)))

    return pc, got


async def _consume(track: MediaStreamTrack, got: Received) -> None:
    try:
        while True:
            frame = await track.recv()
            if track.kind == "video":
                assert isinstance(frame, av.VideoFrame)
                got.video.append((time.monotonic(), bar_position(frame.reformat(format="yuv420p"))))
            else:
                got.audio += 1
    except MediaStreamError:
        pass


async def close(pc: RTCPeerConnection, got: Received | None = None) -> None:
    await pc.close()
    if got is not None:
        for task in got.tasks:
            task.cancel()
        await asyncio.gather(*got.tasks, return_exceptions=True)


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)
