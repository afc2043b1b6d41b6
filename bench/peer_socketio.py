"""The peer a Python user would pick: python-socketio AsyncServer + AsyncRedisManager on aiohttp.

Run by bench/fanout.py as its own process. Every client joins room "bench" on connect;
events published by any process through Redis (AsyncRedisManager, write_only) reach the
room. Configured as a user would for speed: no logging, websocket transport only, uvloop
(as livecart uses; --loop asyncio for the default loop), defaults otherwise (ping 25 s,
async handlers).
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys

import socketio
from aiohttp import web


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--redis", required=True)
    p.add_argument("--room", default="bench")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = p.parse_args()
    if args.host != "127.0.0.1" or not args.redis.startswith("redis://127.0.0.1"):
        raise SystemExit("the benchmark only talks to 127.0.0.1")
    logging.basicConfig(level=logging.WARNING)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=socketio.AsyncRedisManager(args.redis),
        logger=False,
        engineio_logger=False,
        transports=["websocket"],
    )

    @sio.event
    async def connect(sid: str, environ: dict[str, object]) -> None:
        await sio.enter_room(sid, args.room)

    app = web.Application()
    sio.attach(app)
    print(f"peer pid {os.getpid()} on {args.host}:{args.port}", flush=True)
    loop = None
    if args.loop == "uvloop":  # what livecart runs on too (server/cli.py), so the loop is no difference
        import uvloop

        loop = uvloop.new_event_loop()
    web.run_app(app, host=args.host, port=args.port, backlog=4096, access_log=None, print=None, loop=loop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
