"""Server processes for tests: start `python -m server`, wait until it answers, stop it by PID.

Every wait is bounded; a process a test forgets is killed by the fixture that made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_node(workdir: Path, **env: str) -> ServerProcess:
    """`livecart serve` on a free port of 127.0.0.1, advertising that port, with `env` on top."""
    port = free_port()
    node_env = clean_env(LIVECART_PUBLIC_URL=f"http://127.0.0.1:{port}", **env)
    return ServerProcess(["serve", "--port", str(port)], node_env, port).start(workdir)


@contextlib.contextmanager
def cluster(workdir: Path, env: dict[str, str], count: int = 2) -> Iterator[list[ServerProcess]]:
    """`count` nodes started with the same `env` (on their own ports), all killed on the way out."""
    nodes: list[ServerProcess] = []
    try:
        for _ in range(count):
            nodes.append(start_node(workdir, **env))
        yield nodes
    finally:
        for node in nodes:
            node.kill()


@contextlib.contextmanager
def shop_cluster(
    workdir: Path,
    database_url: str,
    admin_token: str,
    *,
    reservation_ttl_s: float,
    redis_cluster: bool = False,
    env: dict[str, str] | None = None,
) -> Iterator[list[ServerProcess]]:
    """Two `livecart serve` nodes sharing one database and a Redis server of their own (the
    rush and crash suites) or a Redis Cluster of their own (`redis_cluster`), every hold
    (regular or sale) lasting `reservation_ttl_s`; both nodes killed and Redis stopped on the
    way out."""
    from tests.redis_cluster import RedisCluster
    from tests.redis_server import RedisServer

    redis = RedisCluster(workdir).start() if redis_cluster else RedisServer(workdir).start()
    try:
        shared = {
            "LIVECART_DATABASE_URL": database_url,
            "LIVECART_REDIS_URL": redis.url,
            "LIVECART_REDIS_CLUSTER": "1" if redis_cluster else "0",
            "LIVECART_ADMIN_TOKEN": admin_token,
            "LIVECART_RESERVATION_TTL_S": f"{reservation_ttl_s:g}",
            "LIVECART_SALE_HOLD_TTL_S": f"{reservation_ttl_s:g}",
            "LIVECART_LOG_LEVEL": "warning",
        }
        with cluster(workdir, {**shared, **(env or {})}) as nodes:
            yield nodes
    finally:
        redis.stop()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECART_")}
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class ServerProcess:
    args: list[str]
    env: dict[str, str]
    port: int
    proc: subprocess.Popen[str] | None = None
    stdout_path: Path | None = None
    stderr_path: Path | None = None
    _files: list[object] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, workdir: Path, timeout: float = 20.0) -> ServerProcess:
        self.stdout_path = workdir / f"server-{self.port}-{time.monotonic_ns()}.out"
        self.stderr_path = self.stdout_path.with_suffix(".err")
        out = self.stdout_path.open("w")
        err = self.stderr_path.open("w")
        self._files = [out, err]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", *self.args],
            cwd=workdir,
            env=self.env,
            stdout=out,
            stderr=err,
            text=True,
        )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}: {self.stderr()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not answer within {timeout}s: {self.stderr()}")

    def stdout(self) -> str:
        return self.stdout_path.read_text() if self.stdout_path else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the process and wait for it; returns its exit code (kills it past timeout)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"server did not stop within {timeout}s") from None
        for f in self._files:
            f.close()  # type: ignore[attr-defined]
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in self._files:
            f.close()  # type: ignore[attr-defined]


class Progress:
    """Counts answers as a burst of requests comes back, so a test can act mid-burst."""

    def __init__(self) -> None:
        self.answered = 0

    async def track(self, request: Awaitable[T]) -> T:
        try:
            return await request
        finally:
            self.answered += 1


async def kill_mid_way(server: ServerProcess, progress: Progress, after: int, timeout: float = 30.0) -> None:
    """SIGKILL the server once `after` answers are in: in the middle of the burst whatever
    the machine's speed, rather than after a guessed delay."""
    deadline = time.monotonic() + timeout
    while progress.answered < after:
        assert time.monotonic() < deadline, "the burst never got going"
        await asyncio.sleep(0.001)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)


async def host_and_stream(http: Any, base: str, admin_token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Over HTTP, as an operator would: a host made by the admin, and an empty show of theirs."""
    admin = {"Authorization": f"Bearer {admin_token}"}
    async with http.post(f"{base}/api/hosts", json={"name": "Mia"}, headers=admin) as r:
        host: dict[str, Any] = await r.json()
    async with http.post(
        f"{base}/api/streams",
        json={"title": "Two nodes", "products": []},
        headers={"Authorization": f"Bearer {host['token']}"},
    ) as r:
        stream: dict[str, Any] = await r.json()
    return host, stream
