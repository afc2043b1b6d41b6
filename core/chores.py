"""Background chores (sweepers, reconcilers): each a task that logs and goes on, never dies quietly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from core.errors import Unavailable
from core.logs import log

logger = logging.getLogger("livecart.chores")


STOP_TIMEOUT_S = 10.0


def _stop_if_canceled() -> None:
    # A cancel can be lost inside a chore: on Python 3.11, asyncio.wait_for (which the
    # database and Redis clients use) returns the result and drops a cancel that arrives
    # just as the awaited call completes, and a library may turn one into its own error,
    # which the loop logs and survives. The request is still counted on the task: honour
    # it here rather than sleep on, and keep shutdown from waiting forever.
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Chores:
    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def every(
        self,
        interval: float,
        chore: Callable[[], Awaitable[object]],
        name: str,
        *,
        first: float | None = None,
    ) -> None:
        self._tasks.append(asyncio.create_task(self._loop(interval, chore, name, first), name=name))

    async def _loop(
        self, interval: float, chore: Callable[[], Awaitable[object]], name: str, first: float | None
    ) -> None:
        await asyncio.sleep(interval if first is None else first)
        while True:
            try:
                await chore()
            except asyncio.CancelledError:
                raise
            except Unavailable as exc:  # a backend is down: try again next time
                log(logger, logging.WARNING, "chore skipped", chore=name, error=str(exc))
            except Exception:
                logger.exception("chore failed", extra={"fields": {"chore": name}})
            _stop_if_canceled()
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        done, stuck = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
        for task in stuck:  # bounded shutdown: say which chore would not stop
            log(logger, logging.ERROR, "chore did not stop", chore=task.get_name())
        for task in done:
            with contextlib.suppress(asyncio.CancelledError):
                task.result()
