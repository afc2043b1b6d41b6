"""How the rest of livecart tells a room something: a typed event from the catalogue.

Checkout and streaming publish through this protocol (the room hub implements it), so the
shape of every event they send is checked against core/events.py, and they never touch a
broker themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import msgspec

from core.errors import Unavailable
from core.events import EventType
from core.logs import log

logger = logging.getLogger("livecart.events")

P = TypeVar("P", bound=msgspec.Struct)


class Publisher(Protocol):
    def publish(self, room: str, kind: EventType[P], payload: P) -> Awaitable[object]: ...


async def announce(events: Publisher, room: str, kind: EventType[P], payload: P) -> None:
    """Tell a room about a change that is already stored. A broker outage only delays the
    news (a client that reconnects reads the state over HTTP), so it is logged, not raised."""
    try:
        await events.publish(room, kind, payload)
    except Unavailable as exc:
        log(logger, logging.WARNING, "room event not published", room=room, type=kind.name, error=str(exc))


class Watcher(Protocol):
    """A feed of its own, keyed apart from rooms: any node may nudge a key, and every node
    watching it hears that something changed (not what: the watcher reads what it shows)."""

    async def watch(self, key: str, listener: Callable[[], None]) -> None: ...

    async def unwatch(self, key: str, listener: Callable[[], None]) -> None: ...

    async def nudge(self, key: str) -> None: ...


async def nudge(watcher: Watcher, key: str) -> None:
    """Nudge a key's watchers; a broker outage only delays the news (watchers also re-read on
    their own), so it is logged, not raised."""
    try:
        await watcher.nudge(key)
    except Unavailable as exc:
        log(logger, logging.WARNING, "nudge not published", key=key, error=str(exc))
