"""Background chores: they survive failures, and they stop when the server stops."""

from __future__ import annotations

import asyncio
import time

import pytest

from core import chores as chores_module
from core.chores import Chores


async def test_a_failing_chore_runs_again() -> None:
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    chores = Chores()
    chores.every(0.01, flaky, "flaky", first=0)
    await asyncio.sleep(0.1)
    await chores.stop()
    assert calls >= 3


async def test_a_chore_that_swallows_its_cancel_still_stops() -> None:
    # As asyncio.wait_for does on Python 3.11 when the cancel meets a finishing call.
    async def swallower() -> None:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            return

    chores = Chores()
    chores.every(5, swallower, "swallower", first=0)
    await asyncio.sleep(0.01)  # inside the chore's call

    started = time.monotonic()
    await chores.stop()
    assert time.monotonic() - started < 2  # not the 5 s interval's sleep, nor the 10 s stop timeout


async def test_stop_gives_up_on_a_chore_that_never_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chores_module, "STOP_TIMEOUT_S", 0.1)
    release = asyncio.Event()

    async def stubborn() -> None:
        for _ in range(100):  # ignores every cancel until released (bounded)
            try:
                await release.wait()
                return
            except asyncio.CancelledError:
                continue

    chores = Chores()
    chores.every(10, stubborn, "stubborn", first=0)
    await asyncio.sleep(0.01)
    started = time.monotonic()
    await chores.stop()
    assert time.monotonic() - started < 1.0
    release.set()  # let it end before the loop does
    await asyncio.sleep(0.05)
