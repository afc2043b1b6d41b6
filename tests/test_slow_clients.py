"""Clients that open a connection and then stall: silent, half-way through a request's head,
half-way through its body. None of them holds a connection, a handler or a shutdown for long."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import ServerProcess, start_node

IDLE_S = 0.5
BODY_S = 0.5


@pytest.fixture
def node(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_node(
        tmp_path,
        LIVECART_DATA_DIR=str(tmp_path / "data"),
        LIVECART_IDLE_TIMEOUT_S=str(IDLE_S),
        LIVECART_BODY_TIMEOUT_S=str(BODY_S),
        LIVECART_SHUTDOWN_TIMEOUT_S="20",
        LIVECART_LOG_LEVEL="warning",
    )
    yield server
    server.kill()


async def _closed_after(node: ServerProcess, sent: bytes, timeout: float = 10) -> tuple[float, bytes]:
    """Send `sent`, then nothing; the seconds until the server closes, and what it answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    started = time.monotonic()
    writer.write(sent)
    try:
        answer = await asyncio.wait_for(reader.read(), timeout)  # until the server closes
    finally:
        writer.close()
    return time.monotonic() - started, answer


async def test_silent_and_half_sent_requests_are_let_go(node: ServerProcess) -> None:
    silent, answer = await _closed_after(node, b"")
    assert silent < IDLE_S + 2 and answer == b""
    half_head, answer = await _closed_after(node, b"GET /healthz HTTP/1.1\r\nHost: livecart\r\n")
    assert half_head < IDLE_S + 2 and answer == b""
    half_body, answer = await _closed_after(
        node,
        b"POST /api/viewers HTTP/1.1\r\nHost: livecart\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"name": ',
    )
    assert half_body < BODY_S + 2
    assert answer.startswith(b"HTTP/1.1 408 ") and b'"code":"request_timeout"' in answer
    # an idle keep-alive connection after a full answer goes too
    idle, answer = await _closed_after(node, b"GET /healthz HTTP/1.1\r\nHost: livecart\r\n\r\n")
    assert idle < IDLE_S + 2 and answer.startswith(b"HTTP/1.1 200 ")


async def test_a_stalled_body_does_not_hold_the_shutdown(node: ServerProcess) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", node.port)
    writer.write(
        b"POST /api/viewers HTTP/1.1\r\nHost: livecart\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    await writer.drain()
    await asyncio.sleep(0.1)
    assert node.proc is not None
    started = time.monotonic()
    node.proc.send_signal(signal.SIGTERM)
    while node.proc.poll() is None and time.monotonic() - started < 25:
        await asyncio.sleep(0.05)
    writer.close()
    assert node.proc.returncode == 0
    # the body timeout and a short linger, not the 20 s shutdown timeout (nor the 5 s last resort)
    assert time.monotonic() - started < BODY_S + 3
