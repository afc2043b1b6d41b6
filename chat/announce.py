"""How the rest of livecart tells a room something: a typed event from the catalogue.

Checkout and streaming publish through this protocol (the room hub implements it), so the
shape of every event they send is checked against core/events.py, and they never touch a
broker themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
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
