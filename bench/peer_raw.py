"""The simplest fan-out that could work, as a peer for bench/fanout.py: bare aiohttp, one Redis
sharded SUBSCRIBE, one frame built per message and written to every socket.

Run by bench/fanout.py as its own process (`--server raw`). It speaks livecart's side of the
room socket just enough for the same generator and publisher: a viewer connecting to
`/api/streams/<room>/ws` gets a `hello`, then every event livecart's RedisBroker publishes to
the room's channel (`lc:{<room>}:ch`, msgpack: seq then `[type, ts, data]`), as one JSON text
frame. No auth, no history, no batching, no slow-consumer cut-off, no catch-up: everything
livecart does beyond this is what the comparison prices.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import struct
import time
from typing import Any

import msgpack
import orjson
import redis.asyncio as redis
from aiohttp import web


def frame(payload: bytes) -> bytes:
    """One unmasked text frame (RFC 6455 §5.2)."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--redis", required=True)
    p.add_argument("--room", default="bench")
    args = p.parse_args()
    if args.host != "127.0.0.1" or not args.redis.startswith("redis://127.0.0.1"):
        raise SystemExit("the benchmark only talks to 127.0.0.1")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    transports: set[Any] = set()

    async def room(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        hello = {
            "type": "hello",
            "ts": time.time(),
            "data": {"stream": {"id": args.room}, "you": None, "seq": 0},
        }
        await ws.send_str(orjson.dumps(hello).decode())
        transport = request.transport
        transports.add(transport)
        try:
            async for _ in ws:
                pass
        finally:
            transports.discard(transport)
        return ws

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def listen(app: web.Application) -> Any:
        client = redis.Redis.from_url(args.redis)
        pubsub = client.pubsub()
        await pubsub.ssubscribe(f"lc:{{{args.room}}}:ch")

        async def pump() -> None:
            async for message in pubsub.listen():
                if message["type"] != "smessage":
                    continue
                unpacker = msgpack.Unpacker(raw=False)
                unpacker.feed(message["data"])
                seq = unpacker.unpack()
                type_, ts, data = unpacker.unpack()
                built = frame(orjson.dumps({"seq": seq, "type": type_, "ts": ts, "data": data}))
                for transport in list(transports):
                    if transport is not None and not transport.is_closing():
                        transport.write(built)

        task = asyncio.create_task(pump())
        yield
        task.cancel()
        await pubsub.aclose()
        await client.aclose()

    app = web.Application()
    app.router.add_get("/api/streams/{room}/ws", room)
    app.router.add_get("/healthz", health)
    app.cleanup_ctx.append(listen)
    print(f"raw peer pid {os.getpid()} on {args.host}:{args.port}", flush=True)
    import uvloop  # what livecart runs on too (server/cli.py)

    web.run_app(
        app,
        host=args.host,
        port=args.port,
        backlog=4096,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
