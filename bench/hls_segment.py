"""What cutting LL-HLS costs per live stream: CPU of `streaming.hls.LiveHls` per second of media.

    .venv/bin/python bench/hls_segment.py [--seconds 60] [--bitrate 2150000] [--rounds 3]

The camera-like clip of bench/camera.py, encoded once as H.264 (constrained baseline, ~2 Mbit/s,
a keyframe every 2 s, SPS/PPS before each), and a 20 ms Opus-sized packet every 20 ms, are fed
to one `LiveHls` exactly as the relay's taps feed it (Annex B frame bytes, RTP timestamps,
keyframe flag), as fast as it takes them: parts, segments, fMP4 boxes and the playlist (read
once per part, as a player's blocking reload would) are all made. Reports the process's CPU
time (user + system) per second of media, i.e. the share of one core one stream costs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
from pathlib import Path

import camera  # bench/, this script's directory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from streaming import hls


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_round(frames: list[tuple[bytes, bool]], seconds: float) -> dict[str, float]:
    live = hls.LiveHls("bench", lambda: None)
    live.has_audio = True
    opus = os.urandom(120)
    count = int(seconds * camera.FPS)
    parts = 0
    start = cpu()
    for i in range(count):
        data, key = frames[i % len(frames)]
        if i % len(frames) == 0:
            key = True  # the clip loops from its first (key) frame
        live.video(data, i * (90000 // camera.FPS), key)
        audio_due = (i + 1) * 50 // camera.FPS
        for a in range(i * 50 // camera.FPS, audio_due):
            live.audio(opus, a * 960, True)
        now = sum(len(s.parts) for s in live.segments.values())
        if now != parts:
            parts = now
            live.playlist()
    used = cpu() - start
    segments = [s.duration for s in live.segments.values() if s.complete]
    return {
        "cpu_s": round(used, 3),
        "media_s": seconds,
        "core_pct_per_stream": round(100 * used / seconds, 3),
        "segments_kept": len(segments),
        "segment_s": round(sum(segments) / max(1, len(segments)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--bitrate", type=int, default=camera.BITRATE)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "camera.h264"
        info = camera.encode(clip, 640, 480, args.bitrate, 10, codec="h264")
        frames = [(bytes(p), bool(p.is_keyframe)) for p in camera.read(clip)]
    print(json.dumps({"clip": {**info, "codec": "h264"}, "cpu": platform.processor() or platform.machine()}))
    for _ in range(args.rounds):
        print(json.dumps(one_round(frames, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
