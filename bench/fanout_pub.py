"""Paced publisher for the fan-out benchmark (started by bench/fanout.py).

Publishes exactly rate x duration chat events, event i at start + i/rate (no catch-up
burst beyond what a late loop forces), through:
  livecart  chat.broker_redis.RedisBroker.publish (the broker stamps ts = time.time()); with
            --cluster, --redis is one node of a Redis Cluster (the broker's cluster client)
  chat      the host's room socket (--url ws://...?token=HOST), a chat frame per event, as a host
            typing does; the server's broker (embedded or Redis) stamps ts
  socketio  socketio.AsyncRedisManager(write_only=True).emit("chat", {"ts": time.time(), ...}, room=...)
Prints "START <t0>" and, at the end, "END <t_end> <published> <late_max_ms>".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time


async def run(args: argparse.Namespace) -> int:
    total = round(args.rate * args.duration)
    if args.mode == "chat":
        import aiohttp

        http = aiohttp.ClientSession()
        ws = await http.ws_connect(args.url, heartbeat=None, max_msg_size=0)

        async def drain() -> None:  # the host's socket gets every event too: keep reading
            async for _ in ws:
                pass

        reader = asyncio.ensure_future(drain())

        async def publish(i: int) -> None:
            await ws.send_json({"type": "chat", "text": f"hello {i}"})

        async def close() -> None:
            await ws.close()
            reader.cancel()
            await http.close()

    elif args.mode == "livecart":
        from chat.broker_redis import RedisBroker

        broker = RedisBroker(args.redis, cluster=args.cluster)

        async def publish(i: int) -> None:
            await broker.publish(
                args.room,
                "chat",
                {"id": f"m{i}", "user": {"id": "u", "name": "bench", "role": "host"}, "text": "hello"},
            )

        async def close() -> None:
            await broker.close()

    else:
        import socketio

        mgr = socketio.AsyncRedisManager(args.redis, write_only=True)

        async def publish(i: int) -> None:
            await mgr.emit(
                "chat",
                {
                    "ts": time.time(),
                    "n": i,
                    "id": f"m{i}",
                    "user": {"id": "u", "name": "bench", "role": "host"},
                    "text": "hello",
                },
                room=args.room,
            )

        async def close() -> None:
            if mgr.redis is not None:
                await mgr.redis.aclose()

    late_max = 0.0
    published = 0
    try:
        await asyncio.sleep(max(0.0, args.start_at - time.time()))
        t0 = time.time()
        print(f"START {t0:.6f}", flush=True)
        hard_stop = t0 + args.duration + 30
        for i in range(1, total + 1):
            target = t0 + (i - 1) / args.rate
            delay = target - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late_max = max(late_max, -delay)
            if time.time() > hard_stop:
                break
            await asyncio.wait_for(publish(i), 10)
            published += 1
        print(f"END {time.time():.6f} {published} {late_max * 1000:.1f}", flush=True)
    finally:
        await close()
    return 0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["livecart", "socketio", "chat"], required=True)
    p.add_argument("--url", default="", help="chat: the host's room socket, ws://127.0.0.1:...")
    p.add_argument("--redis", required=True)
    p.add_argument("--cluster", action="store_true", help="livecart: --redis is a Redis Cluster node")
    p.add_argument("--room", required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--start-at", type=float, default=0.0)
    p.add_argument("--cpus", default="")
    args = p.parse_args()
    if args.url and not args.url.startswith("ws://127.0.0.1:"):
        raise SystemExit("the benchmark only talks to 127.0.0.1")
    if not args.redis.startswith("redis://127.0.0.1"):
        raise SystemExit("the benchmark only talks to Redis on 127.0.0.1")
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
