"""Values read recently, for reads on a hot path that may be a moment stale.

A buy tap names its stream, a chat line is checked against its room's blocked words, a
request carries a token: the same few keys, thousands of times a second. `Recent` keeps
each value for `ttl_s`, and when a key is missing or stale, every caller asking at that
moment waits for one load instead of each making its own (a rush's taps all miss in the
same instant when the value goes stale). Missing values (a load answering None) are not
kept, so a key that appears later is seen at once.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    def __init__(self, ttl_s: float, *, max_size: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self._max_size = max_size
        self._values: dict[K, tuple[float, V]] = {}  # key → (fresh until, value)
        self._loads: dict[K, asyncio.Future[V | None]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V | None]]) -> V | None:
        now = time.monotonic()
        kept = self._values.get(key)
        if kept is not None and kept[0] > now:
            return kept[1]
        loading = self._loads.get(key)
        if loading is None:
            loading = asyncio.ensure_future(load())
            self._loads[key] = loading
            loading.add_done_callback(functools.partial(self._loaded, key, now))
        # shielded: a caller that gives up does not cancel the load the others wait for
        return await asyncio.shield(loading)

    def _loaded(self, key: K, started: float, loading: asyncio.Future[V | None]) -> None:
        if self._loads.get(key) is not loading:
            return  # forgotten while it loaded: its answer may be older than the change
        del self._loads[key]
        if loading.cancelled() or loading.exception() is not None:
            return  # the waiters have the error; the next caller tries again
        value = loading.result()
        if value is not None:
            if len(self._values) >= self._max_size:
                self._values.clear()  # crude but bounded; a miss costs one load
            self._values[key] = (started + self.ttl_s, value)

    def cached(self, key: K) -> V | None:
        """The value if it is kept and fresh; never loads."""
        kept = self._values.get(key)
        return kept[1] if kept is not None and kept[0] > time.monotonic() else None

    def forget(self, key: K) -> None:
        """The value changed: the next caller loads it again (a load running now is not kept)."""
        self._values.pop(key, None)
        self._loads.pop(key, None)

    def keys(self) -> list[K]:
        return [*self._values, *(k for k in self._loads if k not in self._values)]
