"""A camera-like VP8 source for the relay benchmark: encoded once, then sent as encoded frames.

    .venv/bin/python bench/camera.py OUT.ivf [--size 640x480] [--bitrate 2150000] [--seconds 10]

What a phone or webcam shows a live shopping audience is not a test pattern: a textured scene
(cloth, shelves, faces) that moves a little all the time, with sensor noise in every frame. A
synthetic bar pattern compresses to one small packet per frame and flatters a relay, whose cost
is per packet. This draws such a scene (multi-scale texture with hard-edged objects, a slow
camera pan, a moving subject, Gaussian sensor noise) and encodes it with libvpx at the target
bitrate (realtime, CBR, a keyframe every 2 s as OBS and browsers send), so the publisher only
reads packets and the relay gets a camera's packets per frame without a per-run encode.

`CameraTrack` plays such a file in a loop at its frame rate, as `av.Packet`s that aiortc's
sender packetizes without encoding (its `MediaPlayer(decode=False)` path).
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

FPS = 30
GOP_S = 2
BITRATE = 2_150_000  # libvpx's CBR lands about 7% under its target: ~2.0 Mbit/s
VIDEO_TIME_BASE = fractions.Fraction(1, 90000)


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Value noise summed over octaves (coarse shapes to fine grain), 0..1."""
    out = np.zeros((height, width))
    for cell, weight in ((64, 0.35), (24, 0.25), (8, 0.2), (3, 0.12), (1, 0.08)):
        grid = rng.random((height // cell + 2, width // cell + 2))
        ys, xs = np.arange(height) / cell, np.arange(width) / cell
        y0, x0 = ys.astype(int), xs.astype(int)
        fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
        a, b = grid[y0][:, x0], grid[y0][:, x0 + 1]
        c, d = grid[y0 + 1][:, x0], grid[y0 + 1][:, x0 + 1]
        out += weight * ((a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy)
    return out


def _scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A larger-than-frame luma and two chroma planes to pan over."""
    luma = 40 + 170 * _texture(rng, height, width)
    for _ in range(40):  # products, shelves, labels: hard edges the encoder must keep
        h, w = rng.integers(10, height // 5), rng.integers(10, width // 5)
        y, x = rng.integers(0, height - h), rng.integers(0, width - w)
        luma[y : y + h, x : x + w] = rng.integers(20, 235)
        if rng.random() < 0.5:  # striped like printed text or a knit
            luma[y : y + h : 3, x : x + w] = rng.integers(20, 235)
    cb = 128 + 40 * (_texture(rng, height // 2, width // 2) - 0.5)
    cr = 128 + 40 * (_texture(rng, height // 2, width // 2) - 0.5)
    return luma, cb, cr


def frames(width: int, height: int, count: int, seed: int = 7) -> list[av.VideoFrame]:
    rng = np.random.default_rng(seed)
    margin_x, margin_y = width // 4, height // 4
    luma, cb, cr = _scene(rng, height + 2 * margin_y, width + 2 * margin_x)
    out = []
    for i in range(count):
        t = i / FPS
        ox = int(margin_x + margin_x * 0.8 * np.sin(t * 0.7))  # a slow, hand-held pan
        oy = int(margin_y + margin_y * 0.5 * np.sin(t * 1.1))
        y = luma[oy : oy + height, ox : ox + width].copy()
        # the subject: a bright disc moving in front of the scene
        cy, cx = height / 2 + height / 4 * np.sin(t * 1.7), width / 2 + width / 3 * np.cos(t * 1.3)
        yy, xx = np.ogrid[:height, :width]
        y[(yy - cy) ** 2 + (xx - cx) ** 2 < (height / 6) ** 2] = 200
        y += rng.normal(0, 3.0, y.shape)  # sensor noise, new in every frame
        u = cb[oy // 2 : oy // 2 + height // 2, ox // 2 : ox // 2 + width // 2]
        v = cr[oy // 2 : oy // 2 + height // 2, ox // 2 : ox // 2 + width // 2]
        planes = [np.clip(p, 0, 255).astype(np.uint8) for p in (y, u, v)]
        yuv = np.concatenate([planes[0].ravel(), planes[1].ravel(), planes[2].ravel()])
        frame = av.VideoFrame.from_ndarray(yuv.reshape(height * 3 // 2, width), format="yuv420p")
        frame.pts = i
        out.append(frame)
    return out


def encode(
    path: Path, width: int, height: int, bitrate: int, seconds: float, codec: str = "vp8"
) -> dict[str, float]:
    """Write the clip (VP8 in IVF, or H.264 as a raw Annex B stream with SPS/PPS before each
    keyframe, constrained baseline as browsers send it); return what it is."""
    count = int(seconds * FPS)
    h264 = codec == "h264"
    with av.open(str(path), "w", format="h264" if h264 else "ivf") as container:
        stream = container.add_stream("libx264" if h264 else "libvpx", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = bitrate
        stream.gop_size = FPS * GOP_S
        if h264:
            stream.options = {
                "preset": "veryfast",
                "tune": "zerolatency",
                "profile": "baseline",
                "x264-params": f"keyint={FPS * GOP_S}:repeat-headers=1:vbv-maxrate={bitrate // 1000}"
                f":vbv-bufsize={bitrate // 2000}:nal-hrd=cbr",
            }
        else:
            stream.options = {
                "deadline": "realtime",
                "cpu-used": "8",
                "minrate": str(bitrate),
                "maxrate": str(bitrate),
                "lag-in-frames": "0",
            }
        stream.codec_context.time_base = fractions.Fraction(1, FPS)
        for frame in frames(width, height, count):
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return describe(path)


def describe(path: Path) -> dict[str, float]:
    sizes = [len(bytes(p)) for p in read(path)]
    # aiortc's VP8 packetizer: 1,300-byte RTP payloads including a 4-byte descriptor
    packets = sum(-(-size // 1296) for size in sizes)
    return {
        "frames": len(sizes),
        "kbit_s": round(sum(sizes) * 8 * FPS / len(sizes) / 1000),
        "bytes_per_frame": round(sum(sizes) / len(sizes)),
        "video_packets_per_frame": round(packets / len(sizes), 2),
        "video_packets_per_s": round(packets * FPS / len(sizes), 1),
    }


def read(path: Path) -> list[av.Packet[Any]]:
    with av.open(str(path)) as container:
        return [p for p in container.demux(video=0) if p.size]


class CameraTrack(MediaStreamTrack):
    """The clip's encoded frames in a loop, paced at FPS (pts keeps growing across loops)."""

    kind = "video"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._data = [bytes(p) for p in read(path)]
        self._index = 0
        self._start = 0.0

    async def recv(self) -> av.Packet[Any]:
        if self._index == 0:
            self._start = time.monotonic()
        await asyncio.sleep(max(0.0, self._start + self._index / FPS - time.monotonic()))
        packet = av.Packet(self._data[self._index % len(self._data)])
        packet.pts = self._index * (90000 // FPS)
        packet.time_base = VIDEO_TIME_BASE
        self._index += 1
        return packet


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--bitrate", type=int, default=BITRATE)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    print(json.dumps(encode(args.out, width, height, args.bitrate, args.seconds)))


if __name__ == "__main__":
    main()
