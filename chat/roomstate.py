"""Room state every node must agree on: presence, likes, unique viewers, mutes, bans, blocked words.

One protocol, two implementations: `MemoryRoomState` here (the embedded default)
and `roomstate_redis.RedisRoomState`. Presence is reported per node with an expiry,
so a node that dies stops counting within `ttl` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from chat.uniques import UniqueCounter


class RoomState(Protocol):
    async def report_presence(self, room: str, node: str, count: int, ttl: float) -> int:
        """Record this node's viewer count for the room; return the total over live nodes."""

    async def viewers(self, room: str) -> int:
        """The current total, without reporting."""

    async def viewers_peak(self, room: str) -> int: ...

    async def add_unique_viewers(self, room: str, viewers: Iterable[str]) -> None: ...

    async def unique_viewers(self, room: str) -> int: ...

    async def add_likes(self, room: str, count: int) -> int:
        """Add to the room's like total; return the new total."""

    async def mute(self, room: str, user_id: str, until: float) -> None: ...

    async def ban(self, room: str, user_id: str) -> None: ...

    async def standing(self, room: str, user_id: str) -> tuple[bool, float]:
        """(banned, muted until) for one user, in one round trip."""

    async def set_blocked_words(self, room: str, words: Iterable[str]) -> None: ...

    async def blocked_words(self, room: str) -> frozenset[str]: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


@dataclass
class _Room:
    presence: dict[str, tuple[int, float]] = field(default_factory=dict)  # node → (count, expires)
    peak: int = 0
    unique: UniqueCounter = field(default_factory=UniqueCounter)
    likes: int = 0
    muted: dict[str, float] = field(default_factory=dict)
    banned: set[str] = field(default_factory=set)
    blocked: frozenset[str] = frozenset()


class MemoryRoomState:
    def __init__(self) -> None:
        self._rooms: dict[str, _Room] = {}

    def _room(self, room: str) -> _Room:
        state = self._rooms.get(room)
        if state is None:
            state = self._rooms[room] = _Room()
        return state

    async def report_presence(self, room: str, node: str, count: int, ttl: float) -> int:
        state = self._room(room)
        state.presence[node] = (count, time.monotonic() + ttl)
        total = await self.viewers(room)
        state.peak = max(state.peak, total)
        return total

    async def viewers(self, room: str) -> int:
        state = self._rooms.get(room)
        if state is None:
            return 0
        now = time.monotonic()
        for node in [n for n, (_, expires) in state.presence.items() if expires <= now]:
            del state.presence[node]
        return sum(count for count, _ in state.presence.values())

    async def viewers_peak(self, room: str) -> int:
        state = self._rooms.get(room)
        return state.peak if state else 0

    async def add_unique_viewers(self, room: str, viewers: Iterable[str]) -> None:
        self._room(room).unique.add(viewers)

    async def unique_viewers(self, room: str) -> int:
        state = self._rooms.get(room)
        return state.unique.count() if state else 0

    async def add_likes(self, room: str, count: int) -> int:
        state = self._room(room)
        state.likes += count
        return state.likes

    async def mute(self, room: str, user_id: str, until: float) -> None:
        self._room(room).muted[user_id] = until

    async def ban(self, room: str, user_id: str) -> None:
        self._room(room).banned.add(user_id)

    async def standing(self, room: str, user_id: str) -> tuple[bool, float]:
        state = self._rooms.get(room)
        if state is None:
            return False, 0.0
        return user_id in state.banned, state.muted.get(user_id, 0.0)

    async def set_blocked_words(self, room: str, words: Iterable[str]) -> None:
        self._room(room).blocked = frozenset(words)

    async def blocked_words(self, room: str) -> frozenset[str]:
        state = self._rooms.get(room)
        return state.blocked if state else frozenset()

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
