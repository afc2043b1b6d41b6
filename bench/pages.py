"""A phone opens the watch link: how long until it is watching, against a bare WHEP client.

    .venv/bin/python bench/pages.py [--rounds 8]

One `livecart serve` process; the host goes live from the studio page in Debian's Chromium
(fake 1280x720 camera and microphone: a moving picture with a beep, what a camera sends).
Then, alternating round by round in one run, (a) a new phone-sized browser context opens
/watch/{id} cold (no cache) and the time from navigation to the room's `hello`, to the first
decoded frame and to one second of playback is read; (b) bench/relay_peers.py `probe`, an
aiortc client that only negotiates WHEP and decodes, reports its time to first frame. The
ratio says what the page itself (HTML, modules, the room socket, ICE gathering in a browser)
adds to the protocol's own cost. Also: the watch page's weight (every byte it fetched).
Everything on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.async_api import async_playwright  # noqa: E402
from procs import cpu_seconds, free_port  # noqa: E402  (bench/, this script's directory)

from tests.browser import CHROMIUM, FLAGS, PHONE  # noqa: E402

PY = sys.executable
PEERS = str(ROOT / "bench" / "relay_peers.py")
ADMIN = "bench-admin-token-" + "x" * 16


def call(base: str, path: str, token: str, body: Any) -> Any:
    request = urllib.request.Request(
        f"{base}{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


async def poll(page: Any, expression: str, timeout: float = 20.0) -> float:
    """Seconds until `expression` is truthy in `page` (polled every 10 ms)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await page.evaluate(expression):
            return time.monotonic() - start
        await asyncio.sleep(0.01)
    raise TimeoutError(expression)


async def phone_round(browser: Any, url: str) -> dict[str, float]:
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = await context.new_page()
    start = time.monotonic()
    await page.goto(url, wait_until="domcontentloaded")
    loaded = time.monotonic() - start
    room = await poll(page, "window.e2e && window.e2e.room && window.e2e.room.state === 'open'") + loaded
    first = await poll(page, "document.querySelector('#video').currentTime > 0") + loaded
    second = await poll(page, "document.querySelector('#video').currentTime > 1") + loaded
    weight = await page.evaluate(
        "[...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]"
        ".reduce((sum, e) => sum + (e.decodedBodySize || 0), 0)"
    )
    await context.close()
    return {"page_s": loaded, "room_s": room, "first_frame_s": first, "one_second_s": second, "bytes": weight}


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tempfile.mkdtemp(prefix="lc-bench-pages-")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LIVECART_")},
        "LIVECART_DATA_DIR": data,
        "LIVECART_ADMIN_TOKEN": ADMIN,
        "LIVECART_ICE_ADDRESSES": "127.0.0.1",
        "LIVECART_PUBLIC_URL": base,
        "LIVECART_LOG_LEVEL": "warning",
    }
    server = subprocess.Popen([PY, "-m", "server", "serve", "--port", str(port)], env=env, cwd=data)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    return server, base


async def main(rounds: int, server: subprocess.Popen[bytes], base: str) -> None:
    host = call(base, "/api/hosts", ADMIN, {"name": "Bench host"})
    stream = call(base, "/api/streams", host["token"], {"title": "Bench show", "products": []})
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        studio = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
        await studio.goto(f"{base}/studio/{stream['id']}", wait_until="domcontentloaded")
        await studio.fill("#token-input", host["token"])
        await studio.click("#gate button[type=submit]")
        await poll(studio, "document.querySelector('#preview').videoWidth > 0")
        await studio.click("#go-live")
        await poll(studio, "document.querySelector('#state-badge').dataset.state === 'live'")
        await asyncio.sleep(3)  # past the publisher's bandwidth ramp-up
        size = await studio.evaluate(
            "(({videoWidth: w, videoHeight: h}) => [w, h])(document.querySelector('#preview'))"
        )
        phones: list[dict[str, float]] = []
        probes: list[float] = []
        cpu_before = cpu_seconds(server.pid)
        for _ in range(rounds):
            phones.append(await phone_round(browser, f"{base}/watch/{stream['id']}"))
            probe = subprocess.run(
                [PY, PEERS, "probe", f"{base}/api/streams/{stream['id']}/whep"],
                capture_output=True,
                timeout=60,
            )
            probes.append(json.loads(probe.stdout.decode().strip().splitlines()[-1])["first_frame_s"])
        server_cpu = cpu_seconds(server.pid) - cpu_before
        await browser.close()

    def median(key: str) -> float:
        return round(statistics.median(p[key] for p in phones), 3)

    report = {
        "rounds": rounds,
        "camera": f"{size[0]}x{size[1]}",
        "phone_page_loaded_s": median("page_s"),
        "phone_room_open_s": median("room_s"),
        "phone_first_frame_s": median("first_frame_s"),
        "phone_first_frame_max_s": round(max(p["first_frame_s"] for p in phones), 3),
        "phone_one_second_played_s": median("one_second_s"),
        "probe_first_frame_s": round(statistics.median(probes), 3),
        "phone_over_probe": round(median("first_frame_s") / statistics.median(probes), 2),
        "watch_page_bytes": int(statistics.median(p["bytes"] for p in phones)),
        "server_cpu_s_all_rounds": round(server_cpu, 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=8)
    process, url = start_server()
    try:
        asyncio.run(main(parser.parse_args().rounds, process, url))
    finally:
        process.terminate()
        process.wait(20)
