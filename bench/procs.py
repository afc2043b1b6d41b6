"""What the benchmark scripts share about the processes they start: a free loopback port, CPU
read from /proc, a bounded stop by PID, and the Redis an arm runs on (the machine's, one of its
own, or a Redis Cluster of its own)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(*pids: int) -> float:
    """utime + stime of the processes, in seconds; a process that is gone counts 0."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICKS
        except (OSError, IndexError):
            pass
    return total


def stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class BenchRedis:
    """The Redis one arm of a benchmark runs on, by `kind`:

    shared   the machine's redis-server at `shared_url` (its db flushed before and after)
    own      a redis-server of the arm's own (tests/redis_server.py) on a free loopback port
    cluster  a 3-master Redis Cluster of the arm's own (tests/redis_cluster.py); `url` is one
             master's, as an operator gives livecart with LIVECART_REDIS_CLUSTER=1
    none     no Redis (a server on an in-process broker)

    The own kinds keep nothing on disk (no AOF, no RDB: as the machine's Redis here, so fsync
    is no part of either arm) and stop() ends each redis-server by its PID (SIGTERM, 10 s,
    SIGKILL). start() blocks (a cluster takes a few seconds): call it before the arm's other
    processes start. CPU: `pids()` for /proc, and `cpu_seconds()`, the sum of each server's
    own `INFO cpu` (getrusage, microseconds: /proc's 10 ms ticks are coarse against the
    fraction of a core Redis uses in a benchmark window)."""

    def __init__(self, kind: str, workdir: Path, shared_url: str = "redis://127.0.0.1:6379/15") -> None:
        assert kind in ("shared", "own", "cluster", "none"), kind
        self.kind = kind
        self.url = shared_url
        self._servers: list[Any] = []  # tests.redis_server.RedisServer, one per redis-server
        self._cluster: Any = None
        self._clients: list[Any] = []
        if kind in ("own", "cluster"):
            root = str(Path(__file__).resolve().parent.parent)
            if root not in sys.path:
                sys.path.append(root)  # tests/ is the project's, beside bench/
        if kind == "cluster":
            from tests.redis_cluster import RedisCluster

            self._cluster = RedisCluster(workdir)
            self._servers = list(self._cluster.nodes)
            for node in self._servers:
                node.persist = False
        elif kind == "own":
            from tests.redis_server import RedisServer

            workdir.mkdir(parents=True, exist_ok=True)
            self._servers = [RedisServer(workdir, persist=False)]

    @property
    def cluster(self) -> bool:
        return self.kind == "cluster"

    def start(self) -> BenchRedis:
        import redis

        if self._cluster is not None:
            self._cluster.start()
            self.url = self._cluster.url
        elif self._servers:
            self.url = self._servers[0].start().url
        elif self.kind == "shared":
            self._flush()
        if self.kind != "none":
            ports = [s.port for s in self._servers] or [int(self.url.rsplit(":", 1)[1].split("/")[0])]
            self._clients = [redis.Redis(host="127.0.0.1", port=p, socket_timeout=5) for p in ports]
        return self

    def pids(self) -> list[int]:
        if self._servers:
            return [s.proc.pid for s in self._servers if s.proc is not None]
        return [int(c.info("server")["process_id"]) for c in self._clients]

    def cpu_seconds(self) -> float | None:
        """used_cpu_sys + used_cpu_user summed over the arm's redis-servers (None: no Redis)."""
        if not self._clients:
            return None
        total = 0.0
        for client in self._clients:
            info = client.info("cpu")
            total += float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
        return total

    def _flush(self) -> None:
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=5)
        try:
            client.flushdb()
        finally:
            client.close()

    def stop(self) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):
                client.close()
        self._clients = []
        if self._cluster is not None:
            self._cluster.stop()
        for server in self._servers:
            server.stop()  # by its Popen's PID; a no-op once stopped
        if self.kind == "shared":
            with contextlib.suppress(Exception):
                self._flush()
