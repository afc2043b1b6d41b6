"""The Broker: how a room's events reach every node, in order, with a bounded history.

A room is a channel named by a string key: a stream's room is keyed by the stream's id, and
other feeds pick keys of their own; the broker knows nothing of what a room is about.
`publish` assigns the next `seq`, appends the event
to the room's history and hands it to every subscribed node in one atomic step
(in-process: one function; Redis: one Lua script), so no two events share a seq
and history never misses one that was delivered. `publish_ephemeral` is for what is
worth nothing later (aggregated likes, viewer counts): no seq of its own, no history.

Each node subscribes once per room that has local viewers; the callback gets
every event of the room (durable and ephemeral) in publish order.

Implementations: broker_memory.MemoryBroker (default), broker_redis.RedisBroker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

HISTORY_SIZE = 1000  # events kept per room for `since` recovery


@dataclass(frozen=True, slots=True)
class Event:
    seq: int  # for an ephemeral event: 0 (the node stamps the room's latest seq when sending)
    type: str
    ts: float
    data: dict[str, Any]

    @property
    def ephemeral(self) -> bool:
        return self.seq == 0

    def as_dict(self, seq: int | None = None) -> dict[str, Any]:
        return {"seq": self.seq if seq is None else seq, "type": self.type, "ts": self.ts, "data": self.data}


# Called on the node's event loop for every event of a subscribed room, in order.
Listener = Callable[[str, Event], None]


class Broker(Protocol):
    async def start(self, listener: Listener) -> None:
        """Begin delivering events of subscribed rooms to `listener`."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise when the backend does not answer (RedisUnavailable for Redis)."""

    async def publish(self, room: str, type: str, data: dict[str, Any]) -> Event:
        """Assign the room's next seq, keep the event in history, deliver it; return it."""

    async def publish_ephemeral(self, room: str, type: str, data: dict[str, Any]) -> None:
        """Deliver to every subscribed node without a seq or history."""

    async def subscribe(self, room: str) -> None:
        """This node wants the room's events (idempotent)."""

    async def unsubscribe(self, room: str) -> None: ...

    async def last_seq(self, room: str) -> int: ...

    async def history(self, room: str, since: int) -> list[Event] | None:
        """Events with seq > since, oldest first; None when history no longer reaches
        back to since + 1 (the client must resync)."""
