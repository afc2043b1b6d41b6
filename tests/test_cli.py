"""The command line as an operator meets it: real processes, real signals, real sockets."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REDIS_URL, free_port
from tests.procs import ServerProcess, clean_env


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.kill()


def _request(url: str, method: str = "GET", body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _serve(servers: list[ServerProcess], tmp_path: Path, *args: str, **env: str) -> ServerProcess:
    port = free_port()
    server = ServerProcess(
        ["serve", "--port", str(port), *args],
        clean_env(LIVECART_DATA_DIR=str(tmp_path / "data"), **env),
        port,
    )
    servers.append(server)
    return server.start(tmp_path)


def test_first_start_prints_admin_token_once_and_it_works(
    servers: list[ServerProcess], tmp_path: Path
) -> None:
    server = _serve(servers, tmp_path)
    out = server.stdout()
    tokens = re.findall(r"^admin token: (\S+)$", out, re.M)
    assert len(tokens) == 1, out
    assert f"serving on http://127.0.0.1:{server.port}" in out
    status, brand = _request(f"{server.url}/api/brands", "POST", {"name": "Acme"}, tokens[0])
    assert status == 201 and brand["name"] == "Acme"
    assert server.stop() == 0

    again = _serve(servers, tmp_path)
    assert "admin token" not in again.stdout()
    status, _ = _request(f"{again.url}/api/brands", "POST", {"name": "Beta"}, tokens[0])
    assert status == 201  # the same token still works after a restart
    status, _ = _request(f"{again.url}/api/products/nope")
    assert status == 404
    assert again.stop() == 0
    # the SQLite file lives in the data dir
    assert (tmp_path / "data" / "livecart.db").exists()


def test_logs_are_one_line_per_event_with_a_level(servers: list[ServerProcess], tmp_path: Path) -> None:
    server = _serve(servers, tmp_path)
    _request(f"{server.url}/healthz")
    assert server.stop(signal.SIGINT) == 0  # Ctrl-C is as clean as SIGTERM
    lines = [line for line in server.stderr().splitlines() if line.strip()]
    assert lines, "no log lines"
    for line in lines:
        assert re.match(r"^ts=\S+ level=(debug|info|warning|error) logger=\S+ msg=", line), line
    assert any("msg=request" in line and "route=/healthz" in line and "status=200" in line for line in lines)
    assert any("msg=stopped" in line for line in lines)


def test_json_logs(servers: list[ServerProcess], tmp_path: Path) -> None:
    server = _serve(servers, tmp_path, LIVECART_LOG_FORMAT="json")
    _request(f"{server.url}/healthz")
    assert server.stop() == 0
    records = [json.loads(line) for line in server.stderr().splitlines() if line.strip()]
    assert any(r["msg"] == "request" and r["status"] == 200 and r["level"] == "info" for r in records)


def test_bad_setting_stops_start_with_one_line_and_exit_2(tmp_path: Path) -> None:
    for env, named in (
        ({"LIVECART_PORT": "eighty"}, "LIVECART_PORT"),
        ({"LIVECART_REDIS_ULR": "x"}, "LIVECART_REDIS_ULR"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "server", "serve"],
            cwd=tmp_path,
            env=clean_env(**env),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and named in lines[0], result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--port", "x"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "--port" in result.stderr


def test_config_command_masks_secrets(tmp_path: Path) -> None:
    config = tmp_path / "livecart.toml"
    config.write_text('port = 9999\nstripe_secret_key = "sk_test_abc"\n')
    result = subprocess.run(
        [sys.executable, "-m", "server", "config", "--config", str(config)],
        cwd=tmp_path,
        env=clean_env(LIVECART_ADMIN_TOKEN="very-secret-" + "s" * 32),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "port = 9999  # file" in result.stdout
    assert 'stripe_secret_key = "****"' in result.stdout and "sk_test_abc" not in result.stdout
    assert "very-secret" not in result.stdout


def test_sigterm_lets_an_in_flight_request_finish(servers: list[ServerProcess], tmp_path: Path) -> None:
    server = _serve(servers, tmp_path, LIVECART_ADMIN_TOKEN="admin-token-for-the-test-suite-000000")
    body = b'{"name": "Slow brand"}'
    head = (
        "POST /api/brands HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Authorization: Bearer admin-token-for-the-test-suite-000000\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + body[:5])  # the request is now in flight, its body half sent
        time.sleep(0.3)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        # new connections are refused while the in-flight one is still served
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        sock.sendall(body[5:])
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    assert response.startswith(b"HTTP/1.1 201"), response[:200]
    assert b"Slow brand" in response
    assert server.stop() == 0


def test_workers_share_one_port_and_stop_together(servers: list[ServerProcess], tmp_path: Path) -> None:
    server = _serve(
        servers,
        tmp_path,
        "--workers",
        "2",
        LIVECART_ADMIN_TOKEN="admin-token-for-the-test-suite-000000",
        LIVECART_REDIS_URL=REDIS_URL,
    )
    assert "with 2 workers" in server.stdout()
    for _ in range(40):
        status, _ = _request(
            f"{server.url}/api/brands", "POST", {"name": "b"}, "admin-token-for-the-test-suite-000000"
        )
        assert status == 201
    # every worker answers on the same port; accounts made on one are valid on the other
    children = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True)  # type: ignore[union-attr]
    pids = {int(p) for p in children.stdout.split()}
    assert len(pids) == 2
    assert server.stop(timeout=30) == 0
    for pid in pids:
        assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0


def test_demo_seeds_a_show(servers: list[ServerProcess], tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess(
        ["demo", "--port", str(port)], clean_env(LIVECART_DATA_DIR=str(tmp_path / "d")), port
    )
    servers.append(server)
    server.start(tmp_path)
    out = server.stdout()
    host_token = re.search(r"^demo host token:\s+(\S+)$", out, re.M)
    stream_url = re.search(r"^demo stream:\s+(\S+)$", out, re.M)
    assert host_token and stream_url, out
    status, stream = _request(stream_url.group(1))
    assert status == 200 and len(stream["products"]) == 3 and stream["state"] == "scheduled"
    status, _ = _request(
        f"{stream_url.group(1)}/pin", "POST", {"product_id": stream["products"][0]["id"]}, host_token.group(1)
    )
    assert status == 200
    # the demo brand's dashboard: its figures (the brand granted the host, so it has a share)
    brand_token = re.search(r"^demo brand token:\s+(\S+)$", out, re.M)
    dashboard = re.search(r"^\s+sales dashboard \(the brand token\):\s+(\S+)$", out, re.M)
    assert brand_token and dashboard and dashboard.group(1).endswith(f"/dashboard/{stream['id']}"), out
    status, figures = _request(f"{stream_url.group(1)}/sales", token=brand_token.group(1))
    assert status == 200 and [p["title"] for p in figures["products"]] == [
        p["title"] for p in stream["products"]
    ]
    assert server.stop() == 0


def test_livecart_console_script_exists() -> None:
    script = Path(sys.executable).parent / "livecart"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "serve" in result.stdout and "demo" in result.stdout


def test_migrate_prepares_the_database_and_exits(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server", "migrate"],
        cwd=tmp_path,
        env=clean_env(LIVECART_DATA_DIR=str(tmp_path / "m")),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "m" / "livecart.db").exists()


def test_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    result = subprocess.run(
        [sys.executable, "-m", "server", "serve"],
        cwd=tmp_path,
        env=clean_env(LIVECART_DATABASE_URL=f"postgresql://u:hunter2@127.0.0.1:{port}/x"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "hunter2" not in result.stderr
    assert f"postgresql://u:****@127.0.0.1:{port}/x" in result.stderr
