"""A Redis Cluster of the test's own: three masters on loopback ports from Debian's redis-server,
joined with `redis-cli --cluster create`, each of which a test may stop (by its PID) and start
again with its data."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

from redis.cluster import RedisCluster as SyncCluster

from tests.redis_server import RedisServer

MASTERS = 3


def _cluster_port() -> int:
    """A free port whose cluster bus port (10,000 above it) is free too: the kernel's ephemeral
    ports are mostly too high for that, so draw from 20000 to 29999."""
    for _ in range(200):
        port = random.randrange(20000, 30000)
        if all(_free(p) for p in (port, port + 10000)):
            return port
    raise AssertionError("no free port pair for a cluster node")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class RedisCluster:
    def __init__(self, workdir: Path, masters: int = MASTERS) -> None:
        cli = shutil.which("redis-cli")
        assert cli, "redis-cli is not installed (.ci/run installs redis-server, which brings it)"
        self.cli = cli
        self.nodes: list[RedisServer] = []
        for n in range(masters):
            folder = workdir / f"redis-cluster-{n}"
            folder.mkdir(parents=True, exist_ok=True)
            node = RedisServer(folder, port=_cluster_port())
            node.extra = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            # a master that is down takes only its own slots with it, as livecart expects
            node.extra += ["--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "no"]
            self.nodes.append(node)

    @property
    def url(self) -> str:
        """A seed node's URL, as an operator would give it (`redis_url` with `redis_cluster`)."""
        return self.nodes[0].url

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [self.cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=30,
        )
        self.wait_ok()
        return self

    def info(self, node: RedisServer) -> dict[str, str]:
        out = subprocess.run(
            [self.cli, "-p", str(node.port), "cluster", "info"], capture_output=True, text=True, timeout=5
        ).stdout
        return dict(line.strip().split(":", 1) for line in out.splitlines() if ":" in line)

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every running node says the cluster is ok with all 16384 slots served."""
        deadline = time.monotonic() + timeout
        while True:
            running = [n for n in self.nodes if n.proc is not None]
            infos = [self.info(n) for n in running]
            if all(i.get("cluster_state") == "ok" and i.get("cluster_slots_ok") == "16384" for i in infos):
                return
            assert time.monotonic() < deadline, infos
            time.sleep(0.1)

    def owner_port(self, key: str) -> int:
        """The port of the master serving `key`'s slot, as the cluster says now."""
        seed = next(n for n in self.nodes if n.proc is not None)
        client = SyncCluster(host="127.0.0.1", port=seed.port)
        try:
            port: int = client.get_node_from_key(key).port  # type: ignore[no-untyped-call]
        finally:
            client.close()
        return port

    def cli_run(self, port: int, *args: str) -> str:
        done = subprocess.run(
            [self.cli, "-p", str(port), *args], capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout.strip()

    def move_slot(self, key: str, to_port: int) -> None:
        """Move `key`'s slot, with its keys, to the master on `to_port`, as `redis-cli --cluster
        reshard` does for each slot: IMPORTING, MIGRATING, MIGRATE the keys, then the new owner."""
        source = self.owner_port(key)
        slot = self.cli_run(source, "cluster", "keyslot", key)
        ids = {port: self.cli_run(port, "cluster", "myid") for port in self.ports}
        self.cli_run(to_port, "cluster", "setslot", slot, "importing", ids[source])
        self.cli_run(source, "cluster", "setslot", slot, "migrating", ids[to_port])
        for _ in range(1000):
            keys = self.cli_run(source, "cluster", "getkeysinslot", slot, "100").split()
            if not keys:
                break
            self.cli_run(source, "migrate", "127.0.0.1", str(to_port), "", "0", "5000", "keys", *keys)
        for port in self.ports:
            self.cli_run(port, "cluster", "setslot", slot, "node", ids[to_port])
        deadline = time.monotonic() + 10
        while self.owner_port(key) != to_port:
            assert time.monotonic() < deadline, "the slot's move did not show in the cluster's map"
            time.sleep(0.05)

    def flush(self) -> None:
        for node in self.nodes:
            if node.proc is not None:
                subprocess.run([self.cli, "-p", str(node.port), "flushall"], capture_output=True, timeout=5)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
