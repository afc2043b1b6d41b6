"""The group commit under the rush path: concurrent calls share one flush, each keeps its answer."""

from __future__ import annotations

import asyncio

import pytest

from core.batch import Batcher


class Recorder:
    """A flush that doubles numbers, refuses negatives one by one, and records its batches."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.running = 0
        self.most_running = 0
        self.delay = delay

    async def flush(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(items)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.running -= 1
        if 999 in items:
            raise RuntimeError("unlucky batch")
        return [ValueError(f"{n} is negative") if n < 0 else n * 2 for n in items]


async def test_calls_made_together_share_one_flush_and_keep_their_own_answers() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder.flush)

    answers = await asyncio.gather(*(batcher.submit(n) for n in range(50)))

    assert answers == [n * 2 for n in range(50)]
    assert recorder.batches == [list(range(50))]


async def test_one_bad_item_fails_only_its_own_caller() -> None:
    batcher: Batcher[int, int] = Batcher(Recorder().flush)

    answers = await asyncio.gather(*(batcher.submit(n) for n in (1, -2, 3)), return_exceptions=True)

    assert answers[0] == 2 and answers[2] == 6
    assert isinstance(answers[1], ValueError) and str(answers[1]) == "-2 is negative"


async def test_a_failed_flush_fails_everyone_in_it_and_the_next_batch_still_runs() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder.flush)

    answers = await asyncio.gather(*(batcher.submit(n) for n in (12, 999)), return_exceptions=True)
    assert all(isinstance(a, RuntimeError) for a in answers)
    assert await batcher.submit(14) == 28


async def test_batches_grow_while_a_flush_runs_and_respect_the_limits() -> None:
    recorder = Recorder(delay=0.01)
    batcher: Batcher[int, int] = Batcher(recorder.flush, max_batch=10, max_in_flight=2)

    async def trickle(start: int) -> list[int]:
        out = []
        for n in range(start, start + 5):  # a caller submits again as soon as it is answered
            out.append(await batcher.submit(n))
        return out

    answers = await asyncio.gather(*(trickle(start) for start in range(0, 200, 5)))

    assert sorted(n for batch in answers for n in batch) == [n * 2 for n in range(200)]
    assert max(len(b) for b in recorder.batches) == 10  # capped
    assert recorder.most_running == 2  # never more flushes at once than allowed
    assert len(recorder.batches) <= 200 // 10 + 2  # grouped, not one flush per call


async def test_a_caller_that_gives_up_does_not_stop_the_others() -> None:
    recorder = Recorder(delay=0.05)
    batcher: Batcher[int, int] = Batcher(recorder.flush)

    quitter = asyncio.ensure_future(batcher.submit(1))
    stayer = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0.01)
    quitter.cancel()

    assert await stayer == 4
    with pytest.raises(asyncio.CancelledError):
        await quitter
    await batcher.drain()
    assert recorder.batches == [[1, 2]]  # the flush ran for both: its work is done regardless


async def test_drain_waits_for_what_was_submitted() -> None:
    recorder = Recorder(delay=0.02)
    batcher: Batcher[int, int] = Batcher(recorder.flush)
    pending = [asyncio.ensure_future(batcher.submit(n)) for n in range(3)]
    await asyncio.sleep(0)

    await batcher.drain()

    assert all(p.done() for p in pending) and recorder.batches == [[0, 1, 2]]


def test_limits_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Batcher(Recorder().flush, max_batch=0)
