"""Recently read values: one load however many callers miss at once, kept for a while."""

from __future__ import annotations

import asyncio

import pytest

from core.recent import Recent


class Source:
    """A slow backend read that counts its calls."""

    def __init__(self, value: str | None = "v1", delay: float = 0.02) -> None:
        self.value = value
        self.delay = delay
        self.loads = 0
        self.fail: Exception | None = None

    async def read(self) -> str | None:
        self.loads += 1
        value, fail = self.value, self.fail  # what the backend held when the read began
        await asyncio.sleep(self.delay)
        if fail is not None:
            raise fail
        return value


async def test_callers_missing_together_share_one_load_and_then_hit() -> None:
    recent: Recent[str, str] = Recent(60)
    source = Source()

    answers = await asyncio.gather(*(recent.get("k", source.read) for _ in range(50)))

    assert answers == ["v1"] * 50 and source.loads == 1
    assert await recent.get("k", source.read) == "v1" and source.loads == 1


async def test_a_stale_value_is_loaded_again() -> None:
    recent: Recent[str, str] = Recent(0.05)
    source = Source(delay=0)
    assert await recent.get("k", source.read) == "v1"
    source.value = "v2"
    assert await recent.get("k", source.read) == "v1"  # still fresh
    await asyncio.sleep(0.06)
    assert await recent.get("k", source.read) == "v2" and source.loads == 2


async def test_missing_values_and_errors_are_not_kept() -> None:
    recent: Recent[str, str] = Recent(60)
    source = Source(value=None, delay=0)
    assert await recent.get("k", source.read) is None
    source.value = "now here"
    assert await recent.get("k", source.read) == "now here"  # seen at once, not after the ttl

    source.fail = RuntimeError("backend down")
    answers = await asyncio.gather(*(recent.get("e", source.read) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(a, RuntimeError) for a in answers) and source.loads == 3
    source.fail = None
    assert await recent.get("e", source.read) == "now here"


async def test_forget_during_a_load_keeps_nothing_stale() -> None:
    recent: Recent[str, str] = Recent(60)
    source = Source()
    waiting = asyncio.ensure_future(recent.get("k", source.read))
    await asyncio.sleep(0.005)  # the read has begun (it takes 0.02 s)
    recent.forget("k")  # the value changed while the old one was being read
    source.value = "new"
    assert await waiting == "v1"  # that caller gets what it asked for...
    assert await recent.get("k", source.read) == "new"  # ...but it was not kept


async def test_a_caller_that_gives_up_does_not_cancel_the_others_load() -> None:
    recent: Recent[str, str] = Recent(60)
    source = Source()
    quitter = asyncio.ensure_future(recent.get("k", source.read))
    stayer = asyncio.ensure_future(recent.get("k", source.read))
    await asyncio.sleep(0)
    quitter.cancel()
    assert await stayer == "v1" and source.loads == 1
    with pytest.raises(asyncio.CancelledError):
        await quitter


async def test_size_stays_bounded() -> None:
    recent: Recent[int, str] = Recent(60, max_size=10)
    source = Source(delay=0)
    for key in range(25):
        await recent.get(key, source.read)
    assert len(recent.keys()) <= 10
