"""Fan-out benchmark: one publisher, N viewers of one room, R events/s for D seconds.

    .venv/bin/python bench/fanout.py --server both --viewers 1000 --rate 50 --duration 20

For each server (livecart, the python-socketio peer, and bench/peer_raw.py: bare aiohttp,
one Redis subscription, one frame per message written to every socket; livecart-cluster is livecart
on a 3-master Redis Cluster of the run's own), in the same invocation and
with the same load generator, it prints one line: deliveries/s achieved vs N x R,
end-to-end latency p50/p99/max (publish time.time() -> receive time.time(), one
machine clock), the server's CPU (utime+stime deltas from /proc/<pid>/stat, the whole
process tree for --workers), the load generator's own CPU (warned about above ~80% of a
core: then the generator, not the server, may be the limit) and Redis's CPU.

Processes (all on 127.0.0.1, each stopped by its PID in a finally block):
  server     livecart `python -m server serve --port P [--workers W]` (Redis broker on
             db --redis-db, flushed before and after), or bench/peer_socketio.py
  redis      with --redis own: a redis-server of the arm's own (tests/redis_server.py), and for
             livecart-cluster always a 3-master cluster of its own (tests/redis_cluster.py),
             no persistence either way, stopped when the arm ends
  generators bench/fanout_gen.py x --gen-procs, raw asyncio WebSocket clients
  publisher  bench/fanout_pub.py, exactly R x D events paced at R/s through Redis
CPU pinning (os.sched_setaffinity): server on --server-cpus (default core 0 for one
process, all cores for --workers > 1), generators and publisher on --gen-cpus (core 1).
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from procs import BenchRedis  # bench/, this script's directory

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable
CLK = os.sysconf("SC_CLK_TCK")


# -- /proc helpers ----------------------------------------------------------------------
def proc_cpu(pid: int) -> float | None:
    """utime + stime of one process (all its threads), in seconds."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = raw[raw.rfind(")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / CLK


def proc_tree(root: int) -> list[int]:
    """root and its descendants (from the ppid field of every /proc/<pid>/stat)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            raw = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(raw[raw.rfind(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine (all cores) from /proc/stat.

    Per-process utime+stime already include the softirq time (loopback TCP) that ran in
    that process's context, so "other" = this - our processes is CPU of other processes
    (also ones that exited during the window, which no per-PID reading sees)."""
    f = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in f[:8])
    return (user + nice + system + irq + softirq + steal) / CLK


def all_cpu() -> dict[int, float]:
    return cpu_snapshot([int(d) for d in os.listdir("/proc") if d.isdigit()])


def proc_name(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline")
            .read_bytes()
            .replace(b"\0", b" ")
            .decode(errors="replace")[:60]
            .strip()
        )
    except OSError:
        return "?"


def cpu_snapshot(pids: list[int]) -> dict[int, float]:
    snap = {}
    for p in pids:
        c = proc_cpu(p)
        if c is not None:
            snap[p] = c
    return snap


def cpu_delta(a: dict[int, float], b: dict[int, float]) -> dict[int, float]:
    return {p: b[p] - a.get(p, 0.0) for p in b}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def arm_redis(kind: str, a: argparse.Namespace, workdir: Path) -> BenchRedis:
    """livecart-cluster: a 3-master Redis Cluster of the arm's own; embedded: no Redis with
    `--redis own`; every other server: the machine's Redis (db --redis-db) or one of its own."""
    if kind == "livecart-cluster":
        which = "cluster"
    elif a.redis == "own":
        which = "none" if kind == "embedded" else "own"
    else:
        which = "shared"
    return BenchRedis(which, workdir, f"redis://127.0.0.1:6379/{a.redis_db}")


def pct(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    i = min(len(sorted_vals) - 1, max(0, round(q * (len(sorted_vals) - 1))))
    return sorted_vals[i]


def count_at(series: list[list[float]], t: float) -> float:
    """The running total of one generator at wall time t (linear between 100 ms samples)."""
    if not series or t <= series[0][0]:
        return series[0][1] if series else 0
    for (t1, c1), (t2, c2) in itertools.pairwise(series):
        if t1 <= t <= t2:
            return c1 + (c2 - c1) * ((t - t1) / (t2 - t1) if t2 > t1 else 1)
    return series[-1][1]


def settle_time(series: list[list[float]]) -> float:
    """Wall time at which this generator's total reached its final value."""
    final = series[-1][1]
    for t, c in series:
        if c >= final:
            return t
    return series[-1][0]


# -- process handling ---------------------------------------------------------------------
def preexec(cpus: set[int] | None):  # type: ignore[no-untyped-def]
    def f() -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if cpus:
            os.sched_setaffinity(0, cpus)

    return f


@dataclass
class Procs:
    """Every process this run started, stopped by PID in stop_all()."""

    started: list[asyncio.subprocess.Process] = field(default_factory=list)
    extra_pids: list[int] = field(default_factory=list)  # e.g. worker children seen during the run

    async def spawn(self, *cmd: str, cpus: set[int] | None = None, **kw: Any) -> asyncio.subprocess.Process:
        p = await asyncio.create_subprocess_exec(*cmd, preexec_fn=preexec(cpus), **kw)
        self.started.append(p)
        return p

    async def stop_all(self) -> None:
        for p in reversed(self.started):
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)
        for p in reversed(self.started):
            try:
                await asyncio.wait_for(p.wait(), 15)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
                await asyncio.wait_for(p.wait(), 5)
        for pid in self.extra_pids:  # orphaned worker children, if their parent died first
            with contextlib.suppress(OSError):
                if b"server" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)


async def read_line(stream: asyncio.StreamReader | None, timeout: float, what: str) -> str:
    assert stream is not None
    try:
        line = await asyncio.wait_for(stream.readline(), timeout)
    except TimeoutError:
        raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}") from None
    if not line:
        raise RuntimeError(f"{what}: process closed its output")
    return line.decode().strip()


async def wait_http(url: str, timeout: float, proc: asyncio.subprocess.Process) -> None:
    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"server exited with code {proc.returncode} during start-up")
            try:
                async with s.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status < 500:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"server not answering {url} after {timeout:.0f} s")


async def livecart_setup(base: str, admin: str) -> tuple[str, str]:
    """A host and its stream: (the stream's id, the host's token)."""
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        async with s.post(
            f"{base}/api/hosts", json={"name": "bench"}, headers={"Authorization": f"Bearer {admin}"}
        ) as r:
            body = await r.json()
            if r.status != 201:
                raise RuntimeError(f"POST /api/hosts -> {r.status} {body}")
            host_token = body["token"]
        async with s.post(
            f"{base}/api/streams",
            json={"title": "bench", "products": []},
            headers={"Authorization": f"Bearer {host_token}"},
        ) as r:
            body = await r.json()
            if r.status != 201:
                raise RuntimeError(f"POST /api/streams -> {r.status} {body}")
            return str(body["id"]), host_token


async def wait_quiet(mine: list[int], limit: float) -> float:
    """Wait (at most `limit` s) until others use < 10% of a core 3 s in a row; return the wait."""
    t_start = time.monotonic()
    quiet = 0
    while time.monotonic() - t_start < limit:
        b0, m0 = machine_busy(), sum(cpu_snapshot(mine).values())
        await asyncio.sleep(1.0)
        b1, m1 = machine_busy(), sum(cpu_snapshot(mine).values())
        quiet = quiet + 1 if (b1 - b0) - (m1 - m0) < 0.10 else 0
        if quiet >= 3:
            break
    return round(time.monotonic() - t_start, 1)


def tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


# -- one server -----------------------------------------------------------------------------
async def run_one(kind: str, a: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"fanout-{kind}-"))
    procs = Procs()
    server_cpus = {int(c) for c in a.server_cpus.split(",")} if a.server_cpus else None
    cluster = kind == "livecart-cluster"
    livecart = kind in ("livecart", "livecart-cluster")
    workers = a.workers if livecart else 1
    publisher = "chat" if kind == "embedded" else a.publisher if livecart else "broker"
    store = arm_redis(kind, a, tmp / "redis")
    res: dict[str, Any] = {
        "server": kind,
        "viewers": a.viewers,
        "rate": a.rate,
        "duration": a.duration,
        "workers": workers,
        "gen_procs": a.gen_procs,
        "server_cpus": a.server_cpus or "any",
        "gen_cpus": a.gen_cpus or "any",
        "publisher": publisher,
        "redis": store.kind,
    }
    try:
        store.start()  # blocking (a cluster: a few seconds), but nothing of this arm runs yet
        redis_url = store.url
        port = free_port()
        host_token = ""
        slog = open(tmp / "server.log", "wb")
        if livecart or kind == "embedded":
            admin = secrets.token_urlsafe(24)
            env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECART_")}
            env.update(
                LIVECART_DATA_DIR=str(tmp / "data"),
                LIVECART_ADMIN_TOKEN=admin,
                LIVECART_LOG_LEVEL="warning",
                # the host's chat publishes R lines/s: lift the per-user chat limit (hosts get 4x)
                LIVECART_CHAT_RATE_PER_S=str(max(1.0, a.rate)),
                LIVECART_CHAT_BURST="1000",
            )
            if livecart:  # "embedded": the in-process broker, no Redis
                env["LIVECART_REDIS_URL"] = redis_url
                env["LIVECART_REDIS_CLUSTER"] = "1" if cluster else "0"
            if a.gc_probe:
                env["PYTHONPATH"] = str(BENCH / "gcprobe")
                env["FANOUT_GC_LOG"] = str(tmp / "gc.log")
            cmd = [PY, "-m", "server", "serve", "--host", "127.0.0.1", "--port", str(port)]
            if workers > 1:
                cmd += ["--workers", str(workers)]
            server = await procs.spawn(
                *cmd, cpus=server_cpus, cwd=str(tmp), env=env, stdout=slog, stderr=asyncio.subprocess.STDOUT
            )
            await wait_http(f"http://127.0.0.1:{port}/healthz", 60, server)
            if workers > 1:  # every worker up (the supervisor's children)
                deadline = time.monotonic() + 30
                while len(proc_tree(server.pid)) < workers + 1 and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                await asyncio.sleep(1.0)
            room, host_token = await livecart_setup(f"http://127.0.0.1:{port}", admin)
            path = f"/api/streams/{room}/ws"
        elif kind == "raw":
            server = await procs.spawn(
                PY,
                str(BENCH / "peer_raw.py"),
                "--port",
                str(port),
                "--redis",
                redis_url,
                "--room",
                "bench",
                cpus=server_cpus,
                cwd=str(tmp),
                env=dict(os.environ),
                stdout=slog,
                stderr=asyncio.subprocess.STDOUT,
            )
            await wait_http(f"http://127.0.0.1:{port}/healthz", 60, server)
            room, path = "bench", "/api/streams/bench/ws"
        else:
            env = dict(os.environ)
            if a.gc_probe:
                env["PYTHONPATH"] = str(BENCH / "gcprobe")
                env["FANOUT_GC_LOG"] = str(tmp / "gc.log")
            server = await procs.spawn(
                PY,
                str(BENCH / "peer_socketio.py"),
                "--port",
                str(port),
                "--redis",
                redis_url,
                "--room",
                "bench",
                "--loop",
                a.peer_loop,
                cpus=server_cpus,
                cwd=str(tmp),
                env=env,
                stdout=slog,
                stderr=asyncio.subprocess.STDOUT,
            )
            await wait_http(f"http://127.0.0.1:{port}/", 60, server)
            room, path = "bench", "/socket.io/?EIO=4&transport=websocket"
        tree = proc_tree(server.pid)
        procs.extra_pids.extend(p for p in tree if p != server.pid)

        # generators
        k = max(1, a.gen_procs)
        sample_every = max(1, a.viewers // max(1, a.samples))
        gens, outs, offset = [], [], 0
        for i in range(k):
            cnt = a.viewers // k + (1 if i < a.viewers % k else 0)
            out = tmp / f"gen{i}.json"
            g = await procs.spawn(
                PY,
                str(BENCH / "fanout_gen.py"),
                "--mode",
                "socketio" if kind == "socketio" else "livecart",  # the raw peer speaks livecart's
                "--port",
                str(port),
                "--path",
                path,
                "--count",
                str(cnt),
                "--offset",
                str(offset),
                "--sample-every",
                str(sample_every),
                "--batch",
                str(a.batch),
                "--connect-timeout",
                str(a.connect_timeout),
                "--max-seconds",
                str(a.connect_phase + a.duration + 120),
                "--loop",
                a.loop,
                "--cpus",
                a.gen_cpus,
                "--out",
                str(out),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                cwd=str(ROOT),
            )
            gens.append(g)
            outs.append(out)
            offset += cnt
        t_conn = time.monotonic()
        ready = await asyncio.gather(*(read_line(g.stdout, a.connect_phase, "generator READY") for g in gens))
        connected = failed = 0
        for line in ready:
            _, c, f, _secs = line.split()
            connected += int(c)
            failed += int(f)
        res["connect_s"] = round(time.monotonic() - t_conn, 2)
        res["connected"], res["connect_failed"] = connected, failed
        if connected == 0:
            raise RuntimeError("no viewer connected")
        tree = proc_tree(server.pid)
        procs.extra_pids.extend(p for p in tree if p != server.pid and p not in procs.extra_pids)
        rpids = await asyncio.to_thread(store.pids)  # a cluster: every master's redis-server
        await asyncio.sleep(1.0)  # let the server settle after the connection storm
        quiet_pids = [*tree, *(g.pid for g in gens), os.getpid(), *rpids]
        res["quiet_wait_s"] = await wait_quiet(quiet_pids, a.wait_quiet)

        for g in gens:
            g.stdin.write(b"GO\n")  # type: ignore[union-attr]
            await g.stdin.drain()  # type: ignore[union-attr]
        pub = await procs.spawn(
            PY,
            str(BENCH / "fanout_pub.py"),
            "--mode",
            "socketio" if kind == "socketio" else "livecart" if publisher == "broker" else "chat",
            "--redis",
            redis_url,
            *(["--cluster"] if cluster else []),
            "--url",
            f"ws://127.0.0.1:{port}{path}?token={host_token}" if publisher == "chat" else "",
            "--room",
            room,
            "--rate",
            str(a.rate),
            "--duration",
            str(a.duration),
            "--start-at",
            str(time.time() + 1.0),
            "--cpus",
            a.gen_cpus,
            stdout=asyncio.subprocess.PIPE,
            cwd=str(ROOT),
        )
        start_line = await read_line(pub.stdout, 30, "publisher START")
        t0 = float(start_line.split()[1])
        watched = {
            "server": tree,
            "gens": [g.pid for g in gens],
            "pub": [pub.pid],
            "redis": rpids,
        }
        snap0 = {n: cpu_snapshot(p) for n, p in watched.items()}
        redis0 = store.cpu_seconds()  # INFO cpu of each redis-server: microseconds, not ticks
        busy0 = machine_busy()
        every0 = all_cpu()
        await asyncio.sleep(max(0.0, t0 + a.duration - time.time()))
        snap1 = {n: cpu_snapshot(p) for n, p in watched.items()}
        redis1 = store.cpu_seconds()
        busy1 = machine_busy()
        every1 = all_cpu()
        window = time.time() - t0
        end_line = await read_line(pub.stdout, 40, "publisher END")
        _, _t_end, published, late_ms = end_line.split()
        await asyncio.wait_for(pub.wait(), 10)
        res["published"] = int(published)
        res["publisher_late_max_ms"] = float(late_ms)

        # drain: until every expected delivery arrived, or no progress for 2 s, or --drain seconds
        expected = connected * int(published)  # refined below once lost_before_go is known
        last_total, last_change = -1, time.monotonic()
        drain_deadline = time.monotonic() + a.drain
        while time.monotonic() < drain_deadline:
            total = 0
            for g in gens:
                g.stdin.write(b"STAT\n")  # type: ignore[union-attr]
                await g.stdin.drain()  # type: ignore[union-attr]
                total += int((await read_line(g.stdout, 10, "generator STAT")).split()[1])
            if total >= expected:
                break
            if total != last_total:
                last_total, last_change = total, time.monotonic()
            elif time.monotonic() - last_change > 2.0:
                break
            await asyncio.sleep(0.25)
        res["drain_cut"] = time.monotonic() >= drain_deadline
        for g in gens:
            g.stdin.write(b"STOP\n")  # type: ignore[union-attr]
            await g.stdin.drain()  # type: ignore[union-attr]
        for g in gens:
            await read_line(g.stdout, 30, "generator DONE")
        results = [orjson.loads(o.read_bytes()) for o in outs]

        # figures
        at_go = connected - sum(r["lost_before_go"] for r in results)
        target = at_go * a.rate
        in_window = sum(count_at(r["series"], t0 + a.duration) for r in results)
        total = sum(r["total"] for r in results)
        t_settle = max(settle_time(r["series"]) for r in results)
        lat = sorted(x for r in results for x in r["lat"])
        by_sec: dict[int, list[float]] = {}
        for r in results:
            for x, t in zip(r["lat"], r.get("lat_t", []), strict=False):
                by_sec.setdefault(int(t - t0), []).append(x)
        res["by_second"] = [
            [sec, round(pct(sorted(v), 0.99) * 1000, 1), round(max(v) * 1000, 1)]
            for sec, v in sorted(by_sec.items())
        ]
        cpu = {n: cpu_delta(snap0[n], snap1[n]) for n in watched}
        server_cpu = sum(cpu["server"].values()) / window
        redis_cpu = redis1 - redis0 if redis0 is not None and redis1 is not None else None  # seconds
        res.update(
            target_per_s=target,
            achieved_per_s=round(in_window / a.duration),
            delivered=total,
            expected=at_go * int(published),
            delivered_pct=round(100 * total / (at_go * int(published)), 2) if at_go else 0,
            last_delivery_after_s=round(t_settle - t0, 2),
            frames=sum(r["frames"] for r in results),
            lat_samples=len(lat),
            sample_sockets=sum(r["samples"] for r in results),
            p50_ms=round(pct(lat, 0.50) * 1000, 2),
            p99_ms=round(pct(lat, 0.99) * 1000, 2),
            max_ms=round(lat[-1] * 1000, 2) if lat else float("nan"),
            server_cpu_pct=round(100 * server_cpu, 1),
            server_cpu_per_proc_pct=[
                round(100 * v / window, 1)
                for p, v in sorted(cpu["server"].items())
                if workers == 1 or p != server.pid
            ],
            server_us_per_delivery=round(1e6 * server_cpu * a.duration / in_window, 2) if in_window else None,
            gen_cpu_pct=[round(100 * v / window, 1) for v in cpu["gens"].values()],
            pub_cpu_pct=round(100 * sum(cpu["pub"].values()) / window, 1),
            redis_cpu_pct=round(100 * redis_cpu / window, 2) if redis_cpu is not None else None,
            redis_proc_cpu_pct=round(100 * sum(cpu["redis"].values()) / window, 1) if cpu["redis"] else None,
            redis_procs=len(cpu["redis"]),
            redis_us_per_delivery=(
                round(1e6 * redis_cpu * a.duration / window / in_window, 3)
                if in_window and redis_cpu is not None
                else None
            ),
            lost_connections=sum(r["lost"] for r in results),
            lost_before_go=sum(r["lost_before_go"] for r in results),
            per_socket_min=min(r["per_socket_min"] for r in results),
            per_socket_max=max(r["per_socket_max"] for r in results),
            seq_gaps=sum(r["gap_events"] for r in results),
            seq_dups=sum(r["dup_events"] for r in results),
            close_codes=merge([r["close_codes"] for r in results]),
            gen_errors=merge([r["errors"] for r in results]),
            gen_loop=results[0]["loop"],
        )
        ours = sum(sum(v.values()) for v in cpu.values())
        res["other_cpu_pct"] = round(100 * max(0.0, busy1 - busy0 - ours) / window, 1)
        res["machine_cpu_pct"] = round(100 * (busy1 - busy0) / window, 1)
        mine = {p for pids in watched.values() for p in pids}
        others = sorted(
            ((v, p) for p, v in cpu_delta(every0, every1).items() if p not in mine and v > 0), reverse=True
        )[:4]
        res["other_top"] = [f"{proc_name(p)} (pid {p}) {100 * v / window:.1f}%" for v, p in others]
        if a.gc_probe:
            res["gc_pauses"] = gc_summary(tmp / "gc.log", t0, t0 + a.duration)
        res["gen_saturated"] = any(v > 80 for v in res["gen_cpu_pct"])
        if server.returncode is not None:
            res["server_exit"] = server.returncode
        return res
    except Exception as e:
        res["error"] = f"{type(e).__name__}: {e}"
        res["server_log_tail"] = tail(tmp / "server.log")
        return res
    finally:
        try:
            await procs.stop_all()
        finally:
            store.stop()  # by PID (each redis-server's Popen), bounded: SIGTERM, 10 s, SIGKILL
        if a.show_server_log:
            res["server_log_tail"] = tail(tmp / "server.log", 40)
        if a.keep_tmp:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def gc_summary(path: Path, t_from: float, t_to: float) -> dict[str, Any]:
    """Server GC pauses >= 1 ms during the publish window (from bench/gcprobe)."""
    pauses = []
    with contextlib.suppress(OSError):
        for ln in path.read_text().splitlines():
            _pid, gen, ms, _collected, t = ln.split()
            if t_from <= float(t) <= t_to:
                pauses.append((int(gen), float(ms)))
    return {
        "count": len(pauses),
        "gen2": sum(1 for g, _ in pauses if g == 2),
        "max_ms": max((ms for _, ms in pauses), default=0.0),
        "total_ms": round(sum(ms for _, ms in pauses), 1),
    }


def merge(dicts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def line_for(r: dict[str, Any]) -> str:
    name = r["server"] + (f" x{r['workers']}" if r.get("workers", 1) > 1 else "")
    head = f"{name:<16} N={r['viewers']} R={r['rate']:g}/s D={r['duration']:g}s"
    if "error" in r:
        return f"{head}  ERROR {r['error']}"
    s = (
        f"{head}  connected {r['connected']}/{r['viewers']}"
        + (f" (then {r['lost_before_go']} closed before publishing)" if r["lost_before_go"] else "")
        + f"  target {r['target_per_s']:.0f}/s  "
        f"achieved {r['achieved_per_s']}/s  delivered {r['delivered_pct']}% "
        f"(last at +{r['last_delivery_after_s']}s)  "
        f"p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms  max {r['max_ms']} ms  "
        f"server CPU {r['server_cpu_pct']}%"
        + (f" {r['server_cpu_per_proc_pct']}" if r["workers"] > 1 else "")
        + f" ({r['server_us_per_delivery']} us/delivery)  gen CPU {r['gen_cpu_pct']}%  "
        f"redis {r['redis_cpu_pct']}%"
        + (f" ({r['redis_procs']} processes)" if r["redis_procs"] > 1 else "")
        + f" ({r['redis_us_per_delivery']} us/delivery, {r['redis']})  other {r['other_cpu_pct']}%  "
        f"frames {r['frames']}  lost {r['lost_connections']}  seq gaps {r['seq_gaps']}"
    )
    if r["gen_saturated"]:
        s += "  WARNING: generator above 80% of a core: it may be the limit"
    if r.get("quiet_wait_s", 0) > 1.5:
        s += f"  (waited {r['quiet_wait_s']} s for a quiet machine)"
    if r["other_cpu_pct"] > 15:
        s += f"  WARNING: other processes used CPU during the window: {r['other_top']}"
    if r["drain_cut"]:
        s += "  (drain cut at --drain: still delivering)"
    if "gc_pauses" in r:
        s += f"  server GC pauses >= 1 ms: {r['gc_pauses']}"
    if r["close_codes"]:
        s += f"  close codes {r['close_codes']}"
    if r["gen_errors"]:
        s += f"  generator errors {r['gen_errors']}"
    return s


async def main_async(a: argparse.Namespace) -> int:
    kinds = {"both": ["livecart", "socketio"], "all": ["livecart", "raw", "socketio"]}.get(
        a.server, a.server.split(",")
    )
    kinds = kinds * a.rounds  # round by round, each round every server in the order given
    out = []
    for n, kind in enumerate(kinds):
        budget = a.connect_phase + a.duration + a.drain + 120
        try:
            r = await asyncio.wait_for(run_one(kind, a), budget)
        except TimeoutError:
            r = {
                "server": kind,
                "viewers": a.viewers,
                "rate": a.rate,
                "duration": a.duration,
                "workers": a.workers,
                "error": f"overall timeout ({budget:.0f} s)",
            }
        out.append(r)
        print(line_for(r), flush=True)
        if r.get("server_log_tail"):
            print("  server log tail:\n    " + r["server_log_tail"].replace("\n", "\n    "), flush=True)
        if n < len(kinds) - 1:
            await asyncio.sleep(3)  # let TIME_WAIT sockets and CPU settle
    if a.rounds > 1 or len(set(kinds)) < len(kinds):
        for line in summary(out):
            print(line, flush=True)
    if a.json:
        doc = {
            "machine": machine(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "argv": sys.argv,
            "results": out,
        }
        text = json.dumps(doc, indent=1)
        if a.json == "-":
            print(text)
        else:
            Path(a.json).write_text(text + "\n")
    return 1 if any("error" in r for r in out) else 0


MEDIANS = (
    ("delivered_pct", "delivered %"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("server_us_per_delivery", "livecart us/delivery"),
    ("redis_us_per_delivery", "redis us/delivery"),
)


def summary(out: list[dict[str, Any]]) -> list[str]:
    """Per server: the median of each figure over its runs; then livecart-cluster / livecart."""
    import statistics

    med: dict[str, dict[str, float]] = {}
    lines = []
    for kind in dict.fromkeys(r["server"] for r in out):
        runs = [r for r in out if r["server"] == kind and "error" not in r]
        if not runs:
            continue
        med[kind] = {
            key: statistics.median(r[key] for r in runs)
            for key, _ in MEDIANS
            if all(r.get(key) is not None for r in runs)
        }
        figures = "  ".join(f"{label} {med[kind][key]:.4g}" for key, label in MEDIANS if key in med[kind])
        lines.append(f"median {kind:<16} runs {len(runs)}  {figures}")
    if "livecart" in med and "livecart-cluster" in med:
        single, cluster = med["livecart"], med["livecart-cluster"]
        ratios = "  ".join(
            f"{label} {cluster[key] / single[key]:.2f}x"
            for key, label in MEDIANS
            if single.get(key) and key in cluster
        )
        lines.append(f"ratio  livecart-cluster / livecart  {ratios}")
    return lines


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                model = ln.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--server",
        default="both",
        help="livecart (Redis broker), livecart-cluster (livecart on a 3-master Redis Cluster of the "
        "run's own), embedded (livecart's in-process broker, the host's chat "
        "publishing), raw (bench/peer_raw.py, the simplest serialize-once fan-out), socketio; "
        "several comma-separated, run in that order; both = livecart,socketio; all = livecart,raw,socketio",
    )
    p.add_argument(
        "--rounds", type=int, default=1, help="run the --server list this many times, one round after another"
    )
    p.add_argument(
        "--redis",
        choices=["shared", "own"],
        default="shared",
        help="the single Redis of the livecart, raw and socketio arms: the machine's 127.0.0.1:6379 (db "
        "--redis-db), or a redis-server each arm starts for itself (tests/redis_server.py, no persistence)",
    )
    p.add_argument(
        "--publisher",
        choices=["broker", "chat"],
        default="broker",
        help="livecart: publish through Redis as a node does, or as the host's chat over its socket",
    )
    p.add_argument("--viewers", type=int, default=1000)
    p.add_argument("--rate", type=float, default=10, help="events per second")
    p.add_argument("--duration", type=float, default=20, help="seconds of publishing")
    p.add_argument("--gen-procs", type=int, default=1)
    p.add_argument("--workers", type=int, default=1, help="livecart --workers")
    p.add_argument(
        "--server-cpus", default=None, help="CPU list for the server (default: 0, or all for --workers>1)"
    )
    p.add_argument("--gen-cpus", default="1", help="CPU list for generators and publisher ('' = unpinned)")
    p.add_argument("--samples", type=int, default=200, help="sockets that parse every frame for latency")
    p.add_argument("--batch", type=int, default=500, help="connections opened at a time")
    p.add_argument("--connect-timeout", type=float, default=15, help="per connection attempt")
    p.add_argument("--connect-phase", type=float, default=180, help="max seconds to open every connection")
    p.add_argument("--drain", type=float, default=20, help="max seconds to wait for late deliveries")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=120,
        help="max seconds to wait, before publishing, for other processes to use < 10%% of a core",
    )
    p.add_argument("--redis-db", type=int, default=15)
    p.add_argument(
        "--gc-probe",
        action="store_true",
        help="log livecart's garbage-collector pauses (bench/gcprobe on the server's PYTHONPATH)",
    )
    p.add_argument(
        "--peer-loop", choices=["uvloop", "asyncio"], default="uvloop", help="python-socketio's loop"
    )
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop", help="generator event loop")
    p.add_argument(
        "--json", nargs="?", const="-", default=None, help="write JSON results to FILE (or stdout)"
    )
    p.add_argument("--keep-tmp", action="store_true")
    p.add_argument("--show-server-log", action="store_true")
    a = p.parse_args()
    known = {"livecart", "livecart-cluster", "embedded", "raw", "socketio", "both", "all"}
    if not set(a.server.split(",")) <= known:
        raise SystemExit(f"--server takes {sorted(known)}")
    if not 1 <= a.rounds <= 20:
        raise SystemExit("--rounds takes 1 to 20")
    if a.server_cpus is None:
        a.server_cpus = "0" if a.workers == 1 else ""
    if a.duration <= 0 or a.rate <= 0 or a.viewers <= 0 or a.duration * a.rate > 1_000_000:
        raise SystemExit("viewers, rate and duration must be positive (and rate x duration <= 1e6)")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if a.viewers // max(1, a.gen_procs) + 256 > hard:
        raise SystemExit(f"RLIMIT_NOFILE hard limit {hard} is too low for {a.viewers} viewers per generator")
    print(
        f"# fanout: pinning server to cpus {a.server_cpus or 'any'}, generators+publisher to "
        f"{a.gen_cpus or 'any'}; {a.gen_procs} generator process(es); sampling ~{a.samples} sockets",
        flush=True,
    )
    return asyncio.run(main_async(a))


if __name__ == "__main__":
    sys.exit(main())
