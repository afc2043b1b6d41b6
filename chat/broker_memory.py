"""In-process broker: the embedded default. One process is the whole cluster."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from chat.broker import HISTORY_SIZE, Event, Listener


class _Room:
    __slots__ = ("history", "seq")

    def __init__(self, history_size: int) -> None:
        self.seq = 0
        self.history: deque[Event] = deque(maxlen=history_size)


class MemoryBroker:
    def __init__(self, history_size: int = HISTORY_SIZE) -> None:
        self._history_size = history_size
        self._rooms: dict[str, _Room] = {}
        self._subscribed: set[str] = set()
        self._listener: Listener | None = None

    def _room(self, room: str) -> _Room:
        state = self._rooms.get(room)
        if state is None:
            state = self._rooms[room] = _Room(self._history_size)
        return state

    async def start(self, listener: Listener) -> None:
        self._listener = listener

    async def close(self) -> None:
        self._listener = None

    async def ping(self) -> None:
        return None

    async def publish(self, room: str, type: str, data: dict[str, Any]) -> Event:
        # No await between taking the seq and delivering: this is the atomic step.
        state = self._room(room)
        state.seq += 1
        event = Event(state.seq, type, time.time(), data)
        state.history.append(event)
        self._deliver(room, event)
        return event

    async def publish_ephemeral(self, room: str, type: str, data: dict[str, Any]) -> None:
        self._deliver(room, Event(0, type, time.time(), data))

    def _deliver(self, room: str, event: Event) -> None:
        if self._listener is not None and room in self._subscribed:
            self._listener(room, event)

    async def subscribe(self, room: str) -> None:
        self._subscribed.add(room)

    async def unsubscribe(self, room: str) -> None:
        self._subscribed.discard(room)

    async def last_seq(self, room: str) -> int:
        state = self._rooms.get(room)
        return state.seq if state else 0

    async def history(self, room: str, since: int) -> list[Event] | None:
        state = self._rooms.get(room)
        last = state.seq if state else 0
        if since > last:
            return None  # the client knows of events this room never had: resync
        if state is None or since == last:
            return []
        if not state.history or state.history[0].seq > since + 1:
            return None
        return [e for e in state.history if e.seq > since]
