"""How long the largest offer livecart accepts blocks its event loop, seen from another process.

    .venv/bin/python bench/sdp_stall.py [--rounds 20]

Starts `livecart serve` (embedded defaults, loopback ICE only). A prober polls `GET /healthz`
every 5 ms on a keep-alive connection of its own, and records each answer's latency; meanwhile
a poster sends, one after the other, WHIP offers to fresh streams: first a real two-line
aiortc offer, then the largest offer the server accepts (MAX_MEDIA_LINES media lines,
MAX_CANDIDATES loopback candidates, padded to just under MAX_OFFER_BYTES), then offers over
each cap (answered 413/400 before any parsing). Reports, per kind, the WHIP answer's latency
and the worst /healthz latency while those offers were being handled: the loop's stall as a
client sees it. Everything talks to 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection
from procs import free_port, stop  # bench/, this script's directory

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from streaming.peers import MAX_CANDIDATES, MAX_MEDIA_LINES, MAX_OFFER_BYTES  # noqa: E402


async def base_offer() -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="sendonly")
    pc.addTransceiver("audio", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    assert pc.localDescription is not None
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def largest(sdp: str, media_lines: int, candidates: int, size: int) -> str:
    """The offer grown to `media_lines` lines (copies of its audio line, inactive), `candidates`
    loopback candidates on the first line, and padding attributes up to `size` bytes."""
    lines = sdp.rstrip("\r\n").split("\r\n")
    first_media = next(i for i, line in enumerate(lines) if line.startswith("m="))
    missing = candidates - sum(line.startswith("a=candidate:") for line in lines)
    extra = [f"a=candidate:{n} 1 udp 2130706431 127.0.0.1 {40000 + n} typ host" for n in range(missing)]
    lines[first_media + 1 : first_media + 1] = extra
    audio_at = next(i for i, line in enumerate(lines) if line.startswith("m=audio"))
    audio = [
        line for line in lines[audio_at:] if not line.startswith(("a=candidate:", "a=end-of-candidates"))
    ]
    for n in range(media_lines - sum(line.startswith("m=") for line in lines)):
        # another audio line the server can answer (opus), its own mid, not sending
        lines += [
            f"a=mid:extra{n}" if line.startswith("a=mid:") else "a=inactive" if line == "a=sendonly" else line
            for line in audio
        ]
    text = "\r\n".join(lines) + "\r\n"
    padding = size - len(text.encode()) - 16
    if padding > 0:
        text += "a=x-padding:" + "x" * padding + "\r\n"
        assert len(text.encode()) <= size, len(text.encode())
    return text


async def probe(
    http: aiohttp.ClientSession, base: str, samples: list[tuple[float, float]], stop_at: list[bool]
) -> None:
    while not stop_at[0]:
        started = time.perf_counter()
        async with http.get(f"{base}/healthz") as response:
            await response.read()
        samples.append((time.monotonic(), time.perf_counter() - started))
        await asyncio.sleep(0.005)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    admin = "bench-admin-" + secrets.token_hex(16)
    workdir = tempfile.mkdtemp(prefix="lc-bench-sdp-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECART_")}
    env.update(
        LIVECART_DATA_DIR=workdir,
        LIVECART_ADMIN_TOKEN=admin,
        LIVECART_ICE_ADDRESSES="127.0.0.1",
        LIVECART_LOG_LEVEL="warning",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            for _ in range(100):
                try:
                    async with http.get(f"{base}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.2)
            auth = {"Authorization": f"Bearer {admin}"}
            async with http.post(f"{base}/api/hosts", json={"name": "Bench"}, headers=auth) as r:
                host = await r.json()
            sdp = await base_offer()
            kinds = {
                "two-line offer": sdp,
                "largest accepted": largest(sdp, MAX_MEDIA_LINES, MAX_CANDIDATES, MAX_OFFER_BYTES),
                f"{MAX_MEDIA_LINES + 1} media lines": largest(sdp, MAX_MEDIA_LINES + 1, 0, 0),
                f"{MAX_CANDIDATES + 1} candidates": largest(sdp, 2, MAX_CANDIDATES + 1, 0),
                "900 media lines, 1 MiB": largest(sdp, 900, 0, 1024 * 1024),
            }
            samples: list[tuple[float, float]] = []
            stopping = [False]
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as prober_http:
                prober = asyncio.create_task(probe(prober_http, base, samples, stopping))
                await asyncio.sleep(1.0)
                quiet = [latency for _, latency in samples]
                results: dict[str, Any] = {"healthz_quiet_max_ms": round(max(quiet) * 1000, 1)}
                for name, offer in kinds.items():
                    answers: list[float] = []
                    statuses: dict[int, int] = {}
                    begin = time.monotonic()
                    for _ in range(args.rounds):
                        async with http.post(
                            f"{base}/api/streams",
                            json={"title": "b", "products": []},
                            headers={"Authorization": f"Bearer {host['token']}"},
                        ) as r:
                            stream = await r.json()
                        started = time.perf_counter()
                        async with http.post(
                            f"{base}/api/streams/{stream['id']}/whip",
                            data=offer.encode(),
                            headers={
                                "Authorization": f"Bearer {host['token']}",
                                "Content-Type": "application/sdp",
                            },
                        ) as r:
                            await r.read()
                            statuses[r.status] = statuses.get(r.status, 0) + 1
                            location = r.headers.get("Location")
                        answers.append(time.perf_counter() - started)
                        if location:
                            async with http.delete(
                                location, headers={"Authorization": f"Bearer {host['token']}"}
                            ):
                                pass
                    end = time.monotonic()
                    await asyncio.sleep(0.2)
                    during = [latency for at, latency in samples if begin <= at <= end + 0.2]
                    results[name] = {
                        "bytes": len(offer.encode()),
                        "statuses": statuses,
                        "whip_ms_median": round(sorted(answers)[len(answers) // 2] * 1000, 1),
                        "whip_ms_max": round(max(answers) * 1000, 1),
                        "healthz_max_ms": round(max(during) * 1000, 1),
                    }
                stopping[0] = True
                await prober
            return results
    finally:
        stop(server, 20)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=20)
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=1))


if __name__ == "__main__":
    main()
