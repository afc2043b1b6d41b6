"""Relay cost per viewer: livecart's encoded passthrough against aiortc's MediaRelay.

    .venv/bin/python bench/relay.py [--viewers 1,10,50,100] [--baseline-viewers 1,10]
                                    [--source camera|bars] [--size 640x480] [--window 10]
                                    [--compare OTHER_CHECKOUT ...]

For each relay (a livecart server process, any `--compare` checkouts' servers, then
bench/relay_baseline.py) one publisher sends VP8 + Opus: by default the camera-like clip of
bench/camera.py (~2 Mbit/s, several packets per frame, encoded once before the run), or
`--source bars`, a bar pattern the publisher encodes itself (one small packet per frame: it
flatters a relay whose cost is per packet). For each N, N lean viewers (bench/relay_peers.py,
separate processes, 25 per process) watch; the relay process's CPU (utime+stime from
/proc/<pid>/stat) is read over `window` seconds, and per packet sent = per viewer / packets/s.
Then a decoding viewer joins late and reports its time to first picture.
Every peer is on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import camera  # bench/, this script's directory
from procs import free_port

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PEERS = str(ROOT / "bench" / "relay_peers.py")
TICKS = os.sysconf("SC_CLK_TCK")
PER_PROCESS = 25


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def http_json(url: str, body: dict[str, Any], token: str) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def start_livecart(workdir: Path, root: Path) -> tuple[subprocess.Popen[bytes], str, str, str]:
    """A livecart server from the checkout at `root` (its own .venv when it has one)."""
    port = free_port()
    admin = "bench-admin-" + secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECART_")}
    env.update(
        LIVECART_DATA_DIR=str(workdir),
        LIVECART_ADMIN_TOKEN=admin,
        LIVECART_ICE_ADDRESSES="127.0.0.1",
        LIVECART_LOG_LEVEL="warning",
    )
    python = root / ".venv" / "bin" / "python"
    proc = subprocess.Popen(
        [str(python) if python.exists() else PY, "-m", "server", "serve", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz")
    host = http_json(base + "/api/hosts", {"name": "Bench"}, admin)
    stream = http_json(base + "/api/streams", {"title": "Bench", "products": []}, host["token"])
    return (
        proc,
        f"{base}/api/streams/{stream['id']}/whip",
        f"{base}/api/streams/{stream['id']}/whep",
        host["token"],
    )


def start_baseline() -> tuple[subprocess.Popen[bytes], str, str, str]:
    port = free_port()
    proc = subprocess.Popen([PY, str(ROOT / "bench" / "relay_baseline.py"), str(port)], cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/api/streams/x/whep")
    return proc, f"{base}/api/streams/x/whip", f"{base}/api/streams/x/whep", "none"


def measure(
    kind: str,
    relay: subprocess.Popen[bytes],
    whip: str,
    whep: str,
    token: str,
    counts: list[int],
    source: list[str],
    window: float,
) -> list[dict[str, Any]]:
    publisher = subprocess.Popen([PY, PEERS, "publish", whip, token, *source], stdout=subprocess.PIPE)
    assert publisher.stdout is not None
    assert publisher.stdout.readline().strip() == b"PUBLISHING"
    time.sleep(3)
    rows = []
    try:
        idle0, t0 = cpu_seconds(relay.pid), time.monotonic()
        time.sleep(window)
        idle = (cpu_seconds(relay.pid) - idle0) / (time.monotonic() - t0)
        rows.append({"relay": kind, "viewers": 0, "cpu_s_per_s": round(idle, 4)})
        print(json.dumps(rows[-1]), flush=True)
        for n in counts:
            procs = []
            left = n
            while left > 0:
                k = min(PER_PROCESS, left)
                left -= k
                procs.append(
                    subprocess.Popen(
                        [PY, PEERS, "watch", whep, "--count", str(k), "--window", str(window)],
                        stdout=subprocess.PIPE,
                    )
                )
            for p in procs:
                assert p.stdout is not None
                line = p.stdout.readline().strip()
                assert line == b"READY", line
            c0, t0 = cpu_seconds(relay.pid), time.monotonic()
            results = []
            for p in procs:
                assert p.stdout is not None
                results.append(json.loads(p.stdout.readline()))
            cpu = (cpu_seconds(relay.pid) - c0) / (time.monotonic() - t0)
            probe = subprocess.run([PY, PEERS, "probe", whep], capture_output=True, timeout=60)
            late = json.loads(probe.stdout.decode().strip().splitlines()[-1])
            for p in procs:
                p.wait(60)
            fps = [f for r in results for f in r["fps"]]
            pps = [f for r in results for f in r["pps"]]
            per_viewer = (cpu - idle) / n
            row = {
                "relay": kind,
                "viewers": n,
                "cpu_s_per_s": round(cpu, 4),
                "per_viewer": round(per_viewer, 5),
                "us_per_packet": round(per_viewer / (sum(pps) / len(pps)) * 1e6, 1),
                "viewer_fps_min": round(min(fps), 1),
                "viewer_fps_mean": round(sum(fps) / len(fps), 1),
                "viewer_pps_mean": round(sum(pps) / len(pps), 1),
                "late_joiner_first_frame_s": late["first_frame_s"] and round(late["first_frame_s"], 3),
                "late_joiner_decoded_fps": round(late["decoded_fps"], 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            time.sleep(2)
    finally:
        publisher.terminate()
        publisher.wait(10)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--viewers", default="1,10,50,100")
    parser.add_argument("--baseline-viewers", default="1,10")
    parser.add_argument("--source", choices=["camera", "bars"], default="camera")
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--bitrate", type=int, default=camera.BITRATE)
    parser.add_argument("--window", type=float, default=10)
    parser.add_argument(
        "--compare",
        type=Path,
        action="append",
        default=[],
        help="another livecart checkout, measured in the same run",
    )
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        source = ["--size", args.size]
        if args.source == "camera":
            clip = Path(tmp) / "camera.ivf"
            width, height = (int(v) for v in args.size.split("x"))
            print(json.dumps({"source": "camera", **camera.encode(clip, width, height, args.bitrate, 10)}))
            source = ["--clip", str(clip)]
        viewers = [int(v) for v in args.viewers.split(",")]
        runs = [("passthrough", lambda: start_livecart(Path(tmp) / "data", ROOT), viewers)]
        runs += [
            (
                f"passthrough@{root.name}",
                lambda root=root: start_livecart(Path(tmp) / root.name, root),
                viewers,
            )
            for root in args.compare
        ]
        if args.baseline_viewers:
            baseline = [int(v) for v in args.baseline_viewers.split(",")]
            runs.append(("mediarelay", start_baseline, baseline))
        for kind, start, counts in runs:
            relay, whip, whep, token = start()
            try:
                rows += measure(kind, relay, whip, whep, token, counts, source, args.window)
            finally:
                relay.terminate()
                relay.wait(20)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
