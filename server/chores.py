"""Background chores (sweepers, reconcilers): each a task that logs and goes on, never dies quietly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from server.errors import Unavailable
from server.logs import log

logger = logging.getLogger("livecart.chores")


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
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
