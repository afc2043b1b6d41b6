"""Group commit: concurrent calls that arrive while one is running go together in the next.

A rush is thousands of buy taps doing the same two things, a Redis reservation and an
order INSERT, and most of what each costs is the round trip (packing, a pool checkout,
the database's per-statement work), not the row. A `Batcher` collects what callers
submit during one turn of the event loop, hands the list to one `flush` call, and gives
each caller its own result. While `max_in_flight` flushes run, new items wait and form
the next batch, so batches grow with the load by themselves: one caller alone is sent at
once, with one extra loop turn of delay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# `flush(items)` answers one outcome per item, in order: a result, or an exception
# for that item alone. If flush itself raises, every item of the batch gets the error.
Flush = Callable[[list[T]], Awaitable[Sequence[R | BaseException]]]


class Batcher(Generic[T, R]):
    def __init__(self, flush: Flush[T, R], *, max_batch: int = 256, max_in_flight: int = 1) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be at least 1")
        self._flush = flush
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._scheduled = False

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, future))
        if not self._scheduled and len(self._in_flight) < self._max_in_flight:
            self._scheduled = True
            loop.call_soon(self._start)  # what else this loop turn submits joins the batch
        return await future

    def _start(self) -> None:
        self._scheduled = False
        while self._waiting and len(self._in_flight) < self._max_in_flight:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._waiting and not self._scheduled:
            self._start()

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            outcomes = await self._flush([item for item, _ in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"a flush of {len(batch)} items answered {len(outcomes)}")
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # its caller gave up (canceled); the work is done regardless
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def drain(self) -> None:
        """Wait until everything submitted so far has been flushed."""
        for _ in range(10_000):  # bounded: each round finishes at least one flush
            if not self._waiting and not self._in_flight:
                return
            if self._in_flight:
                await asyncio.wait(set(self._in_flight))
            else:
                await asyncio.sleep(0)
