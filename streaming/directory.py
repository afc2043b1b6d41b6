"""The stream directory: which node (by its public URL) owns each live stream.

A node claims a stream when its publisher arrives, refreshes the claim while the
publisher is with it, and releases it when the stream ends; a claim that is not
refreshed expires, so a node that dies frees its streams. Viewers asking another
node are sent (307) to the owner. In-process here; Redis in directory_redis.py.
"""

from __future__ import annotations

import time
from typing import Protocol


class OwnedElsewhere(Exception):
    """The stream's publisher is on another node; the viewer should ask `node_url`."""

    def __init__(self, node_url: str) -> None:
        super().__init__(node_url)
        self.node_url = node_url


class Directory(Protocol):
    async def claim(self, stream_id: str, node: str, ttl_s: float) -> str:
        """Take (or keep) the stream for `node`; returns the owner afterwards, maybe another node."""
        ...

    async def owner(self, stream_id: str) -> str | None: ...

    async def release(self, stream_id: str, node: str) -> None:
        """Drop the claim if `node` still holds it."""
        ...

    async def close(self) -> None: ...


class MemoryDirectory:
    def __init__(self) -> None:
        self._owners: dict[str, tuple[str, float]] = {}  # stream → (node, expires at)

    def _current(self, stream_id: str) -> str | None:
        entry = self._owners.get(stream_id)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            del self._owners[stream_id]
            return None
        return entry[0]

    async def claim(self, stream_id: str, node: str, ttl_s: float) -> str:
        current = self._current(stream_id)
        if current is not None and current != node:
            return current
        self._owners[stream_id] = (node, time.monotonic() + ttl_s)
        return node

    async def owner(self, stream_id: str) -> str | None:
        return self._current(stream_id)

    async def release(self, stream_id: str, node: str) -> None:
        if self._current(stream_id) == node:
            del self._owners[stream_id]

    async def close(self) -> None:
        self._owners.clear()
