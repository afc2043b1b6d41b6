"""SIGTERM under load: requests being handled finish, new ones are told to go elsewhere, and the
process exits as soon as the last one has, long before its shutdown timeout."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import ADMIN_TOKEN
from tests.procs import start_node
from tests.scenario import flash_sale

BUYERS = 80
TIMEOUT_S = 10


async def test_sigterm_under_load_finishes_what_it_started_and_exits_at_once(tmp_path: Path) -> None:
    node = start_node(
        tmp_path,
        LIVECART_DATA_DIR=str(tmp_path / "data"),
        LIVECART_ADMIN_TOKEN=ADMIN_TOKEN,
        LIVECART_SHUTDOWN_TIMEOUT_S=str(TIMEOUT_S),
        LIVECART_MAX_HELD_UNITS="1000000",  # these buyers never pay
        LIVECART_LOG_LEVEL="warning",
    )
    try:
        async with aiohttp.ClientSession() as http:
            show = await flash_sale(http, node.url, ADMIN_TOKEN, units=1, stock=1_000_000, buyers=BUYERS)
            ended = f"{node.url}/api/streams/{show.stream['id']}/sales/{show.sale['id']}"
            async with http.delete(ended, headers={"Authorization": f"Bearer {show.host['token']}"}) as r:
                assert r.status == 200
        # regular buys of a product with plenty of stock: each a transaction, none refused
        body = {"stream_id": show.stream["id"], "product_id": show.product["id"]}
        answers: list[tuple[float, str, Any]] = []  # (when sent, key, status or the error's name)
        signalled = asyncio.Event()

        async def buyer(viewer: dict[str, Any]) -> None:
            # one keep-alive connection per buyer, tapping Buy again as soon as it is answered
            connector = aiohttp.TCPConnector(limit=1)
            async with aiohttp.ClientSession(connector=connector) as session:
                for _ in range(10_000):
                    key = secrets.token_hex(8)
                    headers = {"Authorization": f"Bearer {viewer['token']}", "Idempotency-Key": key}
                    sent = time.monotonic()
                    try:
                        async with session.post(f"{node.url}/api/orders", json=body, headers=headers) as r:
                            answer = await r.json()
                            code = answer["error"]["code"] if r.status >= 400 else None
                            answers.append((sent, key, (r.status, code)))
                    except aiohttp.ClientError as exc:
                        answers.append((sent, key, type(exc).__name__))
                        if signalled.is_set():
                            return  # the server is gone: this buyer is done
                        await asyncio.sleep(0.01)

        buyers = [asyncio.create_task(buyer(v)) for v in show.viewers]
        await asyncio.sleep(1.5)  # a steady stream of buys on every connection
        assert node.proc is not None
        sent_at = time.monotonic()
        node.proc.send_signal(signal.SIGTERM)
        signalled.set()
        while node.proc.poll() is None and time.monotonic() - sent_at < TIMEOUT_S + 10:
            await asyncio.sleep(0.05)
        exited_after = time.monotonic() - sent_at
        await asyncio.wait_for(asyncio.gather(*buyers), 30)
    finally:
        node.kill()

    assert node.proc.returncode == 0
    # it did not sit out its timeout: it left once what it had started was done
    assert exited_after < TIMEOUT_S / 2, exited_after
    answered = {outcome for _, _, outcome in answers if isinstance(outcome, tuple)}
    assert (201, None) in answered
    assert answered <= {(201, None), (503, "shutting_down")}, answered
    # what keep-alive connections brought once it was stopping was turned away, not served
    late = {outcome for at, _, outcome in answers if at > sent_at + 0.5}
    assert (201, None) not in late, late
    # every tap answered 201 has its order, and no tap lost on the way out wrote one
    with contextlib.closing(sqlite3.connect(tmp_path / "data" / "livecart.db")) as db:
        stored = {key for (key,) in db.execute("SELECT idempotency_key FROM orders")}
    won = {key for _, key, outcome in answers if outcome == (201, None)}
    lost = {key for _, key, outcome in answers if isinstance(outcome, str)}
    assert won <= stored
    assert not (lost & stored), "a tap was cut after its order was written"
    assert stored <= won, "an order was written whose buyer never heard of it"
