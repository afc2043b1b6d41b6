"""The `livecart` command: serve, demo, config, migrate.

`serve` prepares the database once (migrations, the admin token printed at first
start), then runs one server process, or N worker processes sharing the port
through SO_REUSEPORT, supervised by this one.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web

from config.settings import ConfigError, Settings, describe, load_settings, redact_url
from core import logs
from core.accounts import AccountStore, ensure_admin_token
from core.db.driver import StoreError
from server import demo
from server.app import create_app, drain
from server.database import open_database
from server.middleware import IN_FLIGHT

log = logging.getLogger("livecart.server")

EXIT_CONFIG = 2
ACCEPT_BACKLOG = 4096
LINGER_S = 2.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livecart", description="Live-stream shopping server.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path, help="TOML settings file (also LIVECART_CONFIG)")

    def serving(p: argparse.ArgumentParser) -> None:
        common(p)
        p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
        p.add_argument("--port", help="port to listen on (default 8080)")
        p.add_argument("--workers", help="worker processes sharing the port (default 1)")
        p.add_argument("--worker-child", action="store_true", help=argparse.SUPPRESS)

    serve = sub.add_parser("serve", help="run the server")
    serving(serve)
    serve.add_argument("--demo", action="store_true", help="seed demo accounts and a stream first")
    demo_command = sub.add_parser("demo", help="seed a brand, a host, products and a stream, then serve")
    serving(demo_command)
    common(sub.add_parser("config", help="print the effective settings, secrets masked"))
    common(sub.add_parser("migrate", help="bring the database schema up to date and exit"))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["serve", *argv]  # `livecart` alone serves
    args = _parser().parse_args(argv)
    env_config = os.environ.get("LIVECART_CONFIG")
    config_file = args.config or (Path(env_config) if env_config else None)
    overrides = {name: getattr(args, name, None) for name in ("host", "port", "workers")}
    try:
        settings, sources = load_settings(config_file, overrides=overrides)
    except ConfigError as exc:
        print(f"livecart: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logs.configure(settings.log_level, settings.log_format)

    if args.command == "config":
        print(describe(settings, sources))
        return 0
    worker_child = getattr(args, "worker_child", False)
    if not worker_child:
        seed_demo = args.command == "demo" or getattr(args, "demo", False)
        try:
            asyncio.run(_prepare(settings, seed_demo=seed_demo))
        except (StoreError, OSError) as exc:
            url = redact_url(settings.effective_database_url)
            print(f"livecart: database {url}: {exc}", file=sys.stderr)
            return 1
    if args.command == "migrate":
        return 0
    if settings.workers > 1 and not worker_child:
        return _supervise(settings, argv)
    return _run(_serve(settings, reuse_port=worker_child, announce=not worker_child))


def _run(main: Coroutine[Any, Any, int]) -> int:
    """Run the server on uvloop where it is installed: a faster loop for many sockets."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


async def _prepare(settings: Settings, *, seed_demo: bool) -> None:
    """Migrate, make sure there is an admin token (printed once), and seed the demo."""
    if settings.effective_database_url.startswith("sqlite:"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = await open_database(settings.effective_database_url)
    try:
        token = await ensure_admin_token(AccountStore(db), settings.admin_token)
        if token is not None:
            print(f"admin token: {token}", flush=True)
            print("  (printed once; keep it, or set LIVECART_ADMIN_TOKEN)", flush=True)
        if seed_demo:
            base = settings.effective_public_url
            seeded = await demo.seed(db, base)
            url = f"{base}/api/streams/{seeded.stream_id}"
            print(f"demo brand token: {seeded.brand_token}", flush=True)
            print(f"demo host token:  {seeded.host_token}", flush=True)
            print(f"demo stream:      {url}", flush=True)
            print(
                f"  studio page (go live; the host token):     {base}/studio/{seeded.stream_id}", flush=True
            )
            print(f"  watch page (share it with viewers):        {base}/watch/{seeded.stream_id}", flush=True)
            print(
                f"  sales dashboard (the brand token):         {base}/dashboard/{seeded.stream_id}",
                flush=True,
            )
            print(f"  publish (WHIP, host token, e.g. from OBS): {url}/whip", flush=True)
            print(f"  watch (WHEP):                              {url}/whep", flush=True)
            print(f"  watch (LL-HLS, when it is sent in H.264):  {url}/hls/live.m3u8", flush=True)
            replay = f"{base}/replay/{seeded.stream_id}"
            print(f"  replay page (after the show):              {replay}", flush=True)
            websocket = "ws" + url.removeprefix("http")  # http → ws, https → wss
            print(f"  live events (WebSocket):                   {websocket}/ws", flush=True)
    finally:
        await db.close()


async def _serve(settings: Settings, *, reuse_port: bool, announce: bool) -> int:
    app = create_app(settings)
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=settings.shutdown_timeout_s,
        # aiohttp's own default keeps an idle connection (or one stuck in a request's head) for
        # an hour; it starts this timer when a connection opens and after every answer.
        keepalive_timeout=settings.idle_timeout_s,
        # After an answer given before the body was read (408, 401, 413), aiohttp reads on for
        # this long so the client can finish sending and read the answer (its default is 10 s).
        lingering_time=min(LINGER_S, settings.body_timeout_s),
    )
    await runner.setup()
    # A show that starts brings thousands of viewers in the same second: aiohttp's default
    # accept backlog (128) drops their SYNs and makes them retry a second later.
    site = web.TCPSite(
        runner, settings.host, settings.port, reuse_port=reuse_port or None, backlog=ACCEPT_BACKLOG
    )
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"livecart: cannot listen on {settings.host}:{settings.port}: {exc.strerror}", file=sys.stderr)
        return 1
    # Everything made so far (modules, routes, the app's parts) lives as long as the process:
    # moved out of the collector's reach, a full collection walks only what serving makes
    # (measured: ~27 ms → ~0.1 ms for the start-up heap), so it stalls the loop far less.
    gc.collect()
    gc.freeze()
    url = settings.effective_public_url
    logs.log(log, logging.INFO, "listening", url=url, pid=os.getpid())
    if announce:
        print(f"livecart is serving on {url}", flush=True)
        print(f"  streams page: {url}/   API document: {url}/api/openapi.json", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logs.log(log, logging.INFO, "shutting down", pid=os.getpid())
    started = time.monotonic()
    await site.stop()  # no new connections from here on
    if not await drain(app, settings.shutdown_timeout_s):
        logs.log(
            log,
            logging.WARNING,
            "requests still running at the shutdown timeout",
            in_flight=app[IN_FLIGHT].count,
        )
    try:
        # Closes the remaining (idle) connections, then runs every cleanup context.
        await asyncio.wait_for(runner.cleanup(), 5)
    except TimeoutError:
        logs.log(log, logging.WARNING, "shutdown timed out; exiting anyway")
    logs.log(log, logging.INFO, "stopped", seconds=round(time.monotonic() - started, 3))
    return 0


def _supervise(settings: Settings, argv: list[str]) -> int:
    """Run `workers` children on the same port; forward stop signals; restart a crashed child."""
    # The parent already migrated and seeded: children only serve.
    child_argv = ["serve", *(a for a in argv[1:] if a != "--demo"), "--worker-child"]
    command = [sys.executable, "-m", "server", *child_argv]
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    children = [subprocess.Popen(command) for _ in range(settings.workers)]
    url = settings.effective_public_url
    print(f"livecart is serving on {url} with {settings.workers} workers", flush=True)
    restarts: list[float] = []
    while not stopping:
        time.sleep(0.2)
        for i, child in enumerate(children):
            code = child.poll()
            if code is None or stopping:
                continue
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < 60] + [now]
            if len(restarts) > 5:
                logs.log(log, logging.ERROR, "workers keep crashing; giving up", code=code)
                stopping = True
                break
            logs.log(log, logging.WARNING, "worker exited; restarting", pid=child.pid, code=code)
            children[i] = subprocess.Popen(command)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + settings.shutdown_timeout_s + 10
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return 0 if len(restarts) <= 5 else 1
