"""Peers for bench/relay.py, each run as its own process so the relay's CPU is measured alone.

    relay_peers.py publish URL TOKEN [--clip CAMERA.ivf | --size 640x480] [--seconds S]
    relay_peers.py watch URL --count N --window S     # lean: counts RTP, decodes nothing
    relay_peers.py probe URL                          # decodes; prints time to first picture

Loopback only: no ICE server, 127.0.0.1 only. Lean viewers replace their receivers' packet
handler with a counter (bench-only shortcut: the relay does not know the difference, and the
viewer processes then cost little CPU on this two-core machine).
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from camera import CameraTrack  # bench/, this script's directory

from streaming import hooks

FPS = 30


class Bars(MediaStreamTrack):
    kind = "video"

    def __init__(self, width: int, height: int) -> None:
        super().__init__()
        self.width, self.height = width, height
        self._planes: list[bytes] = []
        bar = width // 16
        for step in range(32):
            x0 = step * (width - bar) // 32
            row = bytes([16] * x0 + [235] * bar + [16] * (width - bar - x0))
            self._planes.append(row * height)
        self._chroma = bytes([128]) * (width // 2 * height // 2)
        self._index = 0
        self._start = 0.0

    async def recv(self) -> av.VideoFrame:
        if self._index == 0:
            self._start = time.monotonic()
        await asyncio.sleep(max(0.0, self._start + self._index / FPS - time.monotonic()))
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        y = frame.planes[0]
        plane = self._planes[self._index % 32]
        if y.line_size != self.width:
            plane = b"".join(
                plane[r * self.width : (r + 1) * self.width] + bytes(y.line_size - self.width)
                for r in range(self.height)
            )
        y.update(plane)
        for p in frame.planes[1:]:
            p.update(
                self._chroma if p.line_size == self.width // 2 else bytes([128]) * (p.line_size * p.height)
            )
        frame.pts = self._index * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        self._index += 1
        return frame


class Tone(MediaStreamTrack):
    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._index = 0
        self._start = 0.0
        self._samples = b"".join(
            int(8000 * math.sin(2 * math.pi * 440 * i / 48000)).to_bytes(2, "little", signed=True)
            for i in range(960)
        )

    async def recv(self) -> av.AudioFrame:
        if self._index == 0:
            self._start = time.monotonic()
        await asyncio.sleep(max(0.0, self._start + self._index * 0.02 - time.monotonic()))
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(self._samples)
        frame.sample_rate = 48000
        frame.pts = self._index * 960
        frame.time_base = fractions.Fraction(1, 48000)
        self._index += 1
        return frame


def connection() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def negotiate(
    http: aiohttp.ClientSession, pc: RTCPeerConnection, url: str, token: str | None = None
) -> None:
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    assert pc.localDescription is not None
    async with http.post(url, data=pc.localDescription.sdp.encode(), headers=headers) as response:
        body = await response.text()
        if response.status != 201:
            raise RuntimeError(f"{url}: {response.status} {body}")
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))


async def publish(url: str, token: str, size: str, seconds: float, clip: Path | None) -> None:
    """VP8 + Opus: the camera-like clip's encoded frames (bench/camera.py), or bars encoded here."""
    width, height = (int(v) for v in size.split("x"))
    pc = connection()
    video: MediaStreamTrack = CameraTrack(clip) if clip is not None else Bars(width, height)
    pc.addTransceiver(video, direction="sendonly")
    pc.addTransceiver(Tone(), direction="sendonly")
    async with aiohttp.ClientSession() as http:
        await negotiate(http, pc, url, token)
    print("PUBLISHING", flush=True)
    await asyncio.sleep(seconds)
    await pc.close()


def _count(pc: RTCPeerConnection, counts: dict[str, int]) -> None:
    """Replace each receiver's packet handler with a counter (bench-only private hook)."""
    for transceiver in pc.getTransceivers():
        kind = transceiver.kind

        async def handle(packet: Any, arrival_time_ms: int, kind: str = kind) -> None:
            counts[kind + "_packets"] += 1
            if kind == "video" and packet.marker:
                counts["video_frames"] += 1
            counts["bytes"] += len(packet.payload)

        transceiver.receiver._handle_rtp_packet = handle  # type: ignore[method-assign]


async def watch(url: str, count: int, window: float) -> None:
    pcs = []
    totals: list[dict[str, int]] = []
    async with aiohttp.ClientSession() as http:
        for _ in range(count):
            pc = connection()
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
            counts = {"video_packets": 0, "audio_packets": 0, "video_frames": 0, "bytes": 0}
            await negotiate(http, pc, url)
            _count(pc, counts)
            pcs.append(pc)
            totals.append(counts)
    deadline = time.monotonic() + 30
    while not all(pc.connectionState == "connected" for pc in pcs) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)  # let every viewer get its first keyframe
    print("READY", flush=True)
    before = [dict(c) for c in totals]
    started = time.monotonic()
    await asyncio.sleep(window)
    elapsed = time.monotonic() - started
    fps = [(c["video_frames"] - b["video_frames"]) / elapsed for c, b in zip(totals, before, strict=True)]
    pps = [
        (c["video_packets"] + c["audio_packets"] - b["video_packets"] - b["audio_packets"]) / elapsed
        for c, b in zip(totals, before, strict=True)
    ]
    print(json.dumps({"fps": fps, "pps": pps}), flush=True)
    for pc in pcs:
        await pc.close()


async def probe(url: str) -> None:
    pc = connection()
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    first: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    frames: list[int] = []
    readers: list[asyncio.Task[None]] = []

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def read() -> None:
            try:
                while True:
                    await track.recv()
                    if track.kind == "video":
                        frames.append(1)
                        if not first.done():
                            first.set_result(time.monotonic())
            except MediaStreamError:
                pass

        if track.kind == "video":
            readers.append(asyncio.ensure_future(read()))

    asked = time.monotonic()
    async with aiohttp.ClientSession() as http:
        await negotiate(http, pc, url)
    try:
        at = await asyncio.wait_for(first, 10)
        await asyncio.sleep(2)
        print(json.dumps({"first_frame_s": at - asked, "decoded_fps": len(frames) / (time.monotonic() - at)}))
    except TimeoutError:
        print(json.dumps({"first_frame_s": None, "decoded_fps": 0}))
    await pc.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["publish", "watch", "probe"])
    parser.add_argument("url")
    parser.add_argument("token", nargs="?")
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--clip", type=Path, help="an encoded VP8 clip (bench/camera.py) instead of bars")
    parser.add_argument("--seconds", type=float, default=3600)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--window", type=float, default=10)
    args = parser.parse_args()
    hooks.install(("127.0.0.1",))
    if args.mode == "publish":
        asyncio.run(publish(args.url, args.token, args.size, args.seconds, args.clip))
    elif args.mode == "watch":
        asyncio.run(watch(args.url, args.count, args.window))
    else:
        asyncio.run(probe(args.url))


if __name__ == "__main__":
    main()
