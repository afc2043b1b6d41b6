"""The floor under the checkout bench: a bare aiohttp app answering the same buy request.

    .venv/bin/python bench/http_floor.py --duration 10 --concurrency 200

Same event loop (uvloop), same request bytes (bench/http_load.py), one process, a handler
that only parses the JSON body and answers a 201 JSON of an order's size: no auth, no
middleware, no Redis, no database. Its requests/s per core of server CPU is what aiohttp
itself costs on this machine, so checkout's buys/s can be read against it side by side.
Everything talks to 127.0.0.1 only; the server process is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time

import orjson
from http_load import build_request, run_load  # bench/, this script's directory
from procs import cpu_seconds, free_port, stop

SERVER = """
import sys, orjson, uvloop
from aiohttp import web
ANSWER = orjson.dumps({"id": "ord_" + "x" * 24, "status": "pending_payment", "amount": 990,
                       "currency": "USD", "client_secret": "s" * 60, "expires_at": 1.0e9, "extra": "y" * 300})
async def buy(request):
    body = orjson.loads(await request.read())
    assert body["quantity"] == 1
    return web.Response(body=ANSWER, status=201, content_type="application/json")
app = web.Application()
app.router.add_post("/api/orders", buy)
uvloop.install()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        for _ in range(100):  # bounded wait for the port
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            await asyncio.sleep(0.1)
        body = orjson.dumps({"stream_id": "str_x", "product_id": "prd_x", "quantity": 1, "sale_id": "sale_x"})
        template = build_request(
            "POST",
            "/api/orders",
            f"127.0.0.1:{port}",
            {"Content-Type": "application/json", "Authorization": "Bearer " + "t" * 43},
            body,
        )
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        load = await run_load(port, [template], concurrency=args.concurrency, duration=args.duration)
        elapsed = time.monotonic() - t0
        cpu = (cpu_seconds(server.pid) - cpu0) / elapsed
        latencies = sorted(load.latencies)
        answered = load.statuses.get(201, 0)
        print(
            json.dumps(
                {
                    "peer": "bare aiohttp",
                    "concurrency": args.concurrency,
                    "requests_per_s": round(answered / elapsed),
                    "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
                    "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
                    "server_cpu": round(cpu, 2),
                    "requests_per_cpu_s": round(answered / elapsed / cpu) if cpu else None,
                }
            )
        )
    finally:
        stop(server, 10)


if __name__ == "__main__":
    asyncio.run(main())
