"""Buy taps per second, end to end: HTTP -> reservation (Redis Lua) -> order row (PostgreSQL)
-> payment intent (demo provider), against 1 and 2 livecart worker processes.

    .venv/bin/python bench/checkout.py --workers 1,2 --duration 15 --concurrency 200

Each run starts `livecart serve --workers N` on its own Redis database and PostgreSQL schema,
seeds a sale of `--units` units, lets `--buyers` viewers (per-viewer limit 99) tap Buy with
`--concurrency` requests in flight for `--duration` seconds, then checks that the units the
stock says are held equal the orders that answered 201 (nothing oversold, nothing lost).
Reports buys/s (201 answers), all answers/s, p50/p99/max latency, the server's CPU and the
generator's own CPU. The taps go out through bench/http_load.py (`--client raw`, the default:
pre-encoded requests on asyncio Protocols) or aiohttp's client (`--client aiohttp`, which costs
the generator ~0.3 of a core that the server under test then lacks on a 2-core machine).

With `--dashboards 0,100 --payers 20 --rounds 2` the same rush runs side by side without and
with 100 dashboards (`GET /api/streams/{id}/sales/ws`, the host's) open through it, alternating,
while `--payers` viewers buy and pay one unit at a time in a loop (in both arms, so the
dashboards have payments to show): the buy taps' figures of the two arms are the comparison.
Each dashboard counts its frames and checks that its figures end with every paid order.

With `--redis own,cluster --rounds 3` the same rush runs on a redis-server of its own and on a
3-master Redis Cluster of its own (tests/redis_cluster.py; livecart with LIVECART_REDIS_CLUSTER=1
and one master's URL), alternating round by round (`shared`, the default, is the machine's Redis
on 127.0.0.1:6379 db 14). Every run also reports Redis's CPU (INFO cpu of each redis-server, the
three masters summed on a cluster) and PostgreSQL's (/proc), per buy, and the last lines give
each arm's medians and the ratios of the cluster to the single Redis.
Everything talks to 127.0.0.1 only; every loop is bounded; every redis-server the run starts is
stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from http_load import LoadResult, build_request, run_load  # bench/, this script's directory
from procs import BenchRedis, cpu_seconds, free_port, stop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the seeding scenario is the rush tests' own (tests/scenario.py)
from tests.scenario import flash_sale  # noqa: E402

ADMIN = "bench-admin-" + secrets.token_hex(16)
PG = os.environ.get("LIVECART_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = "redis://127.0.0.1:6379/14"


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid, *(int(p) for p in out)]


def postgres_pids() -> list[int]:
    """Every process named postgres (the server, its backends and helpers), from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == "postgres":
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine (every core), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


async def wait_quiet(mine: list[int], limit: float) -> float:
    """Wait (at most `limit` s) until the processes not in `mine` use < 10 % of a core for 3 s in
    a row; return the seconds waited."""
    started, quiet = time.monotonic(), 0
    while time.monotonic() - started < limit and quiet < 3:
        busy0, ours0 = machine_busy(), cpu_seconds(*mine)
        await asyncio.sleep(1.0)
        quiet = quiet + 1 if (machine_busy() - busy0) - (cpu_seconds(*mine) - ours0) < 0.10 else 0
    return round(time.monotonic() - started, 1)


async def call(
    http: aiohttp.ClientSession, method: str, url: str, token: str | None = None, **kw: Any
) -> tuple[int, Any]:
    headers = dict(kw.pop("headers", {}))
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with http.request(method, url, headers=headers, **kw) as response:
        return response.status, await response.json()


async def buy_raw(
    port: int, viewers: list[dict[str, Any]], body_base: dict[str, Any], args: argparse.Namespace
) -> LoadResult:
    """The timed buy phase on bench/http_load.py: one pre-encoded request per viewer."""
    body = orjson.dumps(body_base)
    templates = [
        build_request(
            "POST",
            "/api/orders",
            f"127.0.0.1:{port}",
            {"Content-Type": "application/json", "Authorization": f"Bearer {viewer['token']}"},
            body,
        )
        for viewer in viewers
    ]
    return await run_load(port, templates, concurrency=args.concurrency, duration=args.duration)


async def buy_ws(
    http: aiohttp.ClientSession,
    base: str,
    stream_id: str,
    viewers: list[dict[str, Any]],
    body_base: dict[str, Any],
    args: argparse.Namespace,
) -> LoadResult:
    """The timed buy phase over the room socket: `concurrency` lanes, each with one `buy` frame
    in flight, taking turns among its own sockets (one per viewer: the sale's per-viewer limit
    holds per viewer). Every socket also gets the room's events (stock ticks), as a watching
    buyer's does, and skips them."""
    result = LoadResult()
    frame = {k: v for k, v in body_base.items() if k != "stream_id"}
    url = f"{base}/api/streams/{stream_id}/ws"
    per_lane = max(1, min(10, len(viewers) // args.concurrency))
    sockets = await asyncio.gather(
        *(
            http.ws_connect(url, params={"token": viewers[i]["token"]})
            for i in range(args.concurrency * per_lane)
        )
    )
    for ws in sockets:
        await ws.receive(timeout=10)  # hello
    stop_at = time.monotonic() + args.duration
    codes = {"sold_out": 409, "sale_ended": 409, "limit_reached": 409}

    async def lane(mine: list[aiohttp.ClientWebSocketResponse]) -> None:
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            ws = mine[n % len(mine)]
            key = f"ws-{id(ws)}-{n}"
            started = time.perf_counter()
            await ws.send_str(orjson.dumps({"type": "buy", "key": key, **frame}).decode())
            while True:
                message = await ws.receive(timeout=30)
                if message.type is not aiohttp.WSMsgType.TEXT or key not in message.data:
                    if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                        raise ConnectionError("the room closed a buyer's socket")
                    continue  # a room event, not the answer
                answer = orjson.loads(message.data)
                if isinstance(answer, dict) and answer.get("data", {}).get("key") == key:
                    break
            result.latencies.append(time.perf_counter() - started)
            status = 201 if answer["type"] == "order" else codes.get(answer["data"]["code"], 400)
            result.statuses[status] = result.statuses.get(status, 0) + 1

    lanes = [sockets[i :: args.concurrency] for i in range(args.concurrency)]
    try:
        await asyncio.gather(*(lane(mine) for mine in lanes))
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return result


async def buy_aiohttp(
    http: aiohttp.ClientSession,
    base: str,
    viewers: list[dict[str, Any]],
    body_base: dict[str, Any],
    args: argparse.Namespace,
) -> LoadResult:
    """The timed buy phase on aiohttp's client (for comparison: it costs the generator more CPU)."""
    result = LoadResult()
    stop_at = time.monotonic() + args.duration

    async def buyer(index: int) -> None:
        n = index
        while time.monotonic() < stop_at:
            viewer = viewers[n % len(viewers)]
            n += args.concurrency
            started = time.perf_counter()
            async with http.post(
                f"{base}/api/orders",
                json=body_base,
                headers={
                    "Authorization": f"Bearer {viewer['token']}",
                    "Idempotency-Key": secrets.token_hex(8),
                },
            ) as response:
                await response.read()
                result.latencies.append(time.perf_counter() - started)
                result.statuses[response.status] = result.statuses.get(response.status, 0) + 1

    await asyncio.gather(*(buyer(i) for i in range(args.concurrency)))
    return result


class Dashboards:
    """`count` sales feeds of the show, each keeping the orders its figures say."""

    def __init__(self) -> None:
        self.frames = 0
        self.orders: list[int] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.confirmed: list[float] = []  # when the n-th payment was answered 200 (payers note it)
        self.lags: list[float] = []  # per dashboard and payment: shown at - confirmed at

    async def open(self, http: aiohttp.ClientSession, url: str, count: int) -> None:
        sockets = await asyncio.gather(*(http.ws_connect(url) for _ in range(count)))
        self.orders = [0] * count
        self.tasks = [asyncio.create_task(self._read(i, ws)) for i, ws in enumerate(sockets)]

    async def _read(self, index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        async with ws:
            async for message in ws:
                frame = orjson.loads(message.data)
                self.frames += 1
                before, now = self.orders[index], time.monotonic()
                self.orders[index] = frame["data"].get("orders", before)
                if frame["type"] == "delta":
                    # the n-th payment answered is taken as the one that made the count n
                    shown = self.confirmed[before : self.orders[index]]
                    self.lags.extend(now - t for t in shown)

    async def settle(self, paid: int, timeout: float = 10.0) -> bool:
        """Whether every dashboard came to show `paid` orders within `timeout`."""
        deadline = time.monotonic() + timeout
        while any(n != paid for n in self.orders) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        return all(n == paid for n in self.orders)


async def pay_in_a_loop(
    http: aiohttp.ClientSession,
    base: str,
    viewer: dict[str, Any],
    body: dict[str, Any],
    until: float,
    confirmed: list[float],
) -> int:
    """Buy one unit and pay for it, again and again until `until`: the orders paid."""
    paid = 0
    for n in range(100_000):
        if time.monotonic() >= until:
            break
        status, order = await call(
            http,
            "POST",
            f"{base}/api/orders",
            viewer["token"],
            json=body,
            headers={"Idempotency-Key": f"pay-{n}"},
        )
        if status != 201:
            await asyncio.sleep(0.05)
            continue
        status, _ = await call(http, "POST", f"{base}/api/orders/{order['id']}/demo-pay", viewer["token"])
        if status == 200:
            paid += 1
            confirmed.append(time.monotonic())
    return paid


async def run(
    workers: int, dashboards: int, client: str, redis_kind: str, args: argparse.Namespace
) -> dict[str, Any]:
    schema = "bench_" + secrets.token_hex(4)
    conn = await asyncpg.connect(PG)
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.close()
    workdir = tempfile.mkdtemp(prefix="lc-bench-checkout-")
    store = BenchRedis(redis_kind, Path(workdir) / "redis", REDIS)
    server: subprocess.Popen[bytes] | None = None
    try:
        store.start()  # blocking (a cluster: a few seconds); nothing else of the run is up yet
        port = free_port()
        server = start_server(port, workers, schema, store, workdir)
        return await rush(server, port, workers, dashboards, client, schema, store, args)
    finally:
        try:
            if server is not None:
                stop(server, 30)
        finally:
            store.stop()  # each redis-server by its PID; the machine's db flushed
        shutil.rmtree(workdir, ignore_errors=True)
        conn = await asyncpg.connect(PG)
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


def start_server(
    port: int, workers: int, schema: str, store: BenchRedis, workdir: str
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECART_")}
    env.update(
        LIVECART_DATABASE_URL=f"{PG}?search_path={schema}",
        LIVECART_REDIS_URL=store.url,
        LIVECART_REDIS_CLUSTER="1" if store.cluster else "0",
        LIVECART_ADMIN_TOKEN=ADMIN,
        LIVECART_LOG_LEVEL="warning",
        LIVECART_RESERVATION_TTL_S="600",
        LIVECART_SALE_HOLD_TTL_S="600",
        # The buyers never pay, and each taps dozens of times: the per-viewer hold limit (a
        # protection against hoarding, 10 by default) would turn the run into 409s.
        LIVECART_MAX_HELD_UNITS="1000000",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port), "--workers", str(workers)],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def rush(
    server: subprocess.Popen[bytes],
    port: int,
    workers: int,
    dashboards: int,
    client: str,
    schema: str,
    store: BenchRedis,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Seed the sale, run the timed buy phase, check the sold count; the caller stops it all."""
    base = f"http://127.0.0.1:{port}"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
        deadline = time.monotonic() + 30
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"server exited with code {server.returncode} during start-up")
            try:
                if (await call(http, "GET", f"{base}/healthz"))[0] == 200:
                    break
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # let every worker finish starting
        show = await flash_sale(
            http,
            base,
            ADMIN,
            units=args.units,
            buyers=args.buyers,
            duration_s=3600,
            per_viewer_limit=args.per_viewer_limit,
        )
        stream, product, sale, viewers = show.stream, show.product, show.sale, show.viewers
        # The buy button on a sale card names the sale, as the watch page does.
        body_base = {
            "stream_id": stream["id"],
            "product_id": product["id"],
            "quantity": 1,
            "sale_id": sale["id"],
        }
        feeds = Dashboards()
        if dashboards:
            url = f"{base}/api/streams/{stream['id']}/sales/ws?token={show.host['token']}"
            await feeds.open(http, url, dashboards)
        payers = [
            await call(http, "POST", f"{base}/api/viewers", json={"name": f"payer {i}"})
            for i in range(args.payers)
        ]
        pids, pg_pids = children(server.pid), postgres_pids()
        waited = await wait_quiet([*pids, *pg_pids, *store.pids(), os.getpid()], args.wait_quiet)
        cpu0, gen0, t0 = cpu_seconds(*pids), resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        redis0, pg0, busy0 = store.cpu_seconds(), cpu_seconds(*pg_pids), machine_busy()
        paying = [
            asyncio.create_task(
                pay_in_a_loop(http, base, viewer, body_base, t0 + args.duration, feeds.confirmed)
            )
            for _, viewer in payers
        ]
        if client == "raw":
            load = await buy_raw(port, viewers, body_base, args)
        elif client == "ws":
            load = await buy_ws(http, base, stream["id"], viewers, body_base, args)
        else:
            load = await buy_aiohttp(http, base, viewers, body_base, args)
        paid = sum(await asyncio.gather(*paying))
        created = load.statuses.get(201, 0)
        elapsed = time.monotonic() - t0
        cpu1, gen1 = cpu_seconds(*pids), resource.getrusage(resource.RUSAGE_SELF)
        redis1, pg1, busy1 = store.cpu_seconds(), cpu_seconds(*pg_pids), machine_busy()
        _, shown = await call(http, "GET", f"{base}/api/streams/{stream['id']}")
        remaining = shown["sale"]["remaining"] if shown["sale"] else 0
        shown_everywhere = await feeds.settle(paid) if dashboards else None
    conn = await asyncpg.connect(PG)
    try:
        rows, row_units = await conn.fetchrow(
            f"SELECT count(*), coalesce(sum(quantity), 0) FROM {schema}.orders WHERE sale_id = $1",
            sale["id"],
        )
    finally:
        await conn.close()
    # Exactly N of N: the units the stock holds, the orders answered and the order rows agree (a
    # request lost in flight may have been served: it would show here as one held unit too many).
    held = args.units - remaining
    latencies = sorted(load.latencies)
    pick = lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 1)  # noqa: E731
    orders = created + paid
    server_cpu, generator_cpu = cpu1 - cpu0, gen1.ru_utime + gen1.ru_stime - gen0.ru_utime - gen0.ru_stime
    redis_cpu = redis1 - redis0 if redis0 is not None and redis1 is not None else None
    return {
        "client": client,
        "workers": workers,
        "redis": store.kind,
        "concurrency": args.concurrency,
        "seconds": round(elapsed, 1),
        "buys_per_s": round(created / elapsed),
        "answers_per_s": round(len(latencies) / elapsed),
        "statuses": load.statuses,
        "p50_ms": pick(0.5),
        "p99_ms": pick(0.99),
        "max_ms": round(latencies[-1] * 1000, 1),
        "server_cpu": round(server_cpu / elapsed, 2),
        "server_us_per_buy": round(1e6 * server_cpu / orders, 1) if orders else None,
        "redis_cpu": round(redis_cpu / elapsed, 3) if redis_cpu is not None else None,
        "redis_us_per_buy": round(1e6 * redis_cpu / orders, 2) if orders and redis_cpu is not None else None,
        "postgres_cpu": round((pg1 - pg0) / elapsed, 2),
        "generator_cpu": round(generator_cpu / elapsed, 2),
        "quiet_wait_s": waited,
        "other_cpu": round(
            max(0.0, busy1 - busy0 - server_cpu - generator_cpu - (redis_cpu or 0) - (pg1 - pg0)) / elapsed, 2
        ),
        "sold_ok": held == orders == row_units and rows == row_units,
        "sold_check": f"{created} + {paid} paid orders == {held} units held == {rows} order rows"
        f" ({row_units} units)",
        "dashboards": dashboards,
        "paid_per_s": round(paid / elapsed),
        **(
            {
                "feed_frames": feeds.frames,
                "every_payment_shown": shown_everywhere,
                "shown_after_payment_p50_ms": round(statistics.median(feeds.lags) * 1000),
                "shown_after_payment_p99_ms": round(statistics.quantiles(feeds.lags, n=100)[98] * 1000),
            }
            if dashboards and len(feeds.lags) > 1
            else {}
        ),
        **({"errors": load.errors} if load.errors else {}),
    }


MEDIANS = ("buys_per_s", "p50_ms", "p99_ms", "server_us_per_buy", "redis_us_per_buy")


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per arm (workers, dashboards, client, redis): medians over its rounds; then, where the same
    rush ran on a cluster and on a single Redis (own, else shared), the ratios cluster / single."""
    arms: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        arms.setdefault((row["workers"], row["dashboards"], row["client"], row["redis"]), []).append(row)
    out, med = [], {}
    for arm, runs in arms.items():
        med[arm] = {
            key: round(statistics.median(r[key] for r in runs), 2)
            for key in MEDIANS
            if all(r[key] is not None for r in runs)
        }
        names = dict(zip(("workers", "dashboards", "client", "redis"), arm, strict=True))
        out.append(
            {"median": {**names, "runs": len(runs), "sold_ok": all(r["sold_ok"] for r in runs), **med[arm]}}
        )
    for (workers, dashboards, client, kind), cluster in med.items():
        if kind != "cluster":
            continue
        for single_kind in ("own", "shared"):
            single = med.get((workers, dashboards, client, single_kind))
            if single:
                ratios = {
                    k: round(cluster[k] / single[k], 2) for k in MEDIANS if single.get(k) and k in cluster
                }
                names = {"workers": workers, "dashboards": dashboards, "client": client}
                out.append({f"ratio_cluster_over_{single_kind}": {**names, **ratios}})
                break
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--buyers", type=int, default=400)
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument(
        "--client",
        default="raw",
        help="comma list, run side by side: raw (bench/http_load.py, lean), aiohttp (its client), "
        "ws (buy frames over the room socket, one socket per lane)",
    )
    parser.add_argument("--per-viewer-limit", type=int, default=99)
    parser.add_argument("--dashboards", default="0", help="comma list of feeds open, run side by side")
    parser.add_argument("--payers", type=int, default=0, help="viewers buying and paying in a loop")
    parser.add_argument(
        "--redis",
        default="shared",
        help="comma list, run side by side: shared (the machine's Redis, 127.0.0.1:6379 db 14), own (a "
        "redis-server of the run's own), cluster (a 3-master Redis Cluster of the run's own)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="times each --redis and --dashboards arm runs, alternating"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        help="before each timed phase, wait up to S s for other processes to use < 10%% of a core for 3 s",
    )
    args = parser.parse_args()
    kinds = args.redis.split(",")
    if not set(kinds) <= {"shared", "own", "cluster"}:
        raise SystemExit("--redis takes shared, own and cluster")
    rows = []
    for workers in (int(w) for w in args.workers.split(",")):
        for _ in range(args.rounds):
            for redis_kind in kinds:
                for dashboards in (int(d) for d in args.dashboards.split(",")):
                    for client in args.client.split(","):
                        # start-up, seeding and the check are bounded too (the server's start
                        # 30 s, each HTTP call 30 s): the whole run at most duration + 300 s
                        one = run(workers, dashboards, client, redis_kind, args)
                        row = await asyncio.wait_for(one, args.duration + 300)
                        rows.append(row)
                        print(json.dumps(row), flush=True)
    if args.rounds > 1 or len(kinds) > 1:
        for line in summary(rows):
            print(json.dumps(line), flush=True)
    if not all(row["sold_ok"] for row in rows):
        raise SystemExit("the sold check failed (see sold_check)")


if __name__ == "__main__":
    asyncio.run(main())
