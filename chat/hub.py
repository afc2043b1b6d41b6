"""The node's hub: which rooms have local sockets, and the room-wide chores.

It subscribes the node to a room's events while the room has local sockets, feeds
those events to the room's LocalRoom, and runs three ticks for all rooms at once
(never a timer per socket): likes aggregated and published, viewer counts
reported and shared, WebSocket pings.

Everything else in the server publishes room events through `Hub.publish`, typed by the
catalogue in core/events.py (chat/announce.py declares that as the `Publisher` protocol).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import socket
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from chat.broker import Broker, Event
from chat.fanout import Connection, Counters, LocalRoom
from chat.roomstate import RoomState
from core import events
from core.chores import Chores
from core.errors import Unavailable
from core.events import EventType
from core.logs import log
from core.recent import Recent

logger = logging.getLogger("livecart.chat")

P = TypeVar("P", bound=msgspec.Struct)


@dataclass(frozen=True)
class HubSettings:
    send_buffer_limit: int = 256 * 1024
    batch_window_s: float = 0.05
    likes_interval_s: float = 0.25
    presence_interval_s: float = 2.0
    ping_interval_s: float = 25.0


def node_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Hub:
    def __init__(
        self, broker: Broker, state: RoomState, settings: HubSettings | None = None, node: str | None = None
    ) -> None:
        self.broker = broker
        self.state = state
        self.settings = settings or HubSettings()
        self.node = node or node_id()
        self.counters = Counters()
        self.rooms: dict[str, LocalRoom] = {}
        self._likes: dict[str, int] = defaultdict(int)
        self._unique: dict[str, set[str]] = defaultdict(set)
        self._blocked: Recent[str, frozenset[str]] = Recent(self.BLOCKED_CACHE_S)
        self._watchers: dict[str, list[Callable[[], None]]] = {}
        self._chores = Chores()

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        await self.broker.start(self._on_event)
        s = self.settings
        self._chores.every(s.likes_interval_s, self._flush_likes, "hub-likes")
        self._chores.every(s.presence_interval_s, self._report_presence, "hub-presence")
        self._chores.every(s.ping_interval_s, self._ping, "hub-ping")

    async def close(self) -> None:
        await self._chores.stop()
        await self.broker.close()
        await self.state.close()

    # -- events in and out ---------------------------------------------------------------------
    async def publish(self, room: str, kind: EventType[P], payload: P) -> Event:
        return await self.broker.publish(room, kind.name, events.data(payload))

    async def publish_ephemeral(self, room: str, kind: EventType[P], payload: P) -> None:
        await self.broker.publish_ephemeral(room, kind.name, events.data(payload))

    def _on_event(self, room_name: str, event: Event) -> None:
        for listener in self._watchers.get(room_name, ()):
            listener()
        room = self.rooms.get(room_name)
        if room is None:
            return
        room.push(event)
        if event.type == events.MODERATION.name and event.data.get("action") == "ban":
            # Every node closes its own sockets of the banned user.
            for conn in room.connections_of(str(event.data.get("user_id"))):
                conn.closer(1008, "banned")

    # -- watched keys: feeds of their own (chat/announce.py, `Watcher`) ------------------------------
    NUDGE = "nudge"

    async def watch(self, key: str, listener: Callable[[], None]) -> None:
        """Call `listener` whenever any node nudges `key` (subscribing the node on the first)."""
        listeners = self._watchers.setdefault(key, [])
        listeners.append(listener)
        if len(listeners) == 1:
            try:
                await self.broker.subscribe(key)
            except BaseException:
                await self.unwatch(key, listener)
                raise

    async def unwatch(self, key: str, listener: Callable[[], None]) -> None:
        listeners = self._watchers.get(key, [])
        if listener in listeners:
            listeners.remove(listener)
        if not listeners and self._watchers.pop(key, None) is not None:
            with contextlib.suppress(Unavailable):
                await self.broker.unsubscribe(key)

    async def nudge(self, key: str) -> None:
        """Tell every node's watchers of `key` that what they show has changed."""
        await self.broker.publish_ephemeral(key, self.NUDGE, {})

    # -- sockets ------------------------------------------------------------------------------
    async def join(self, room_name: str, conn: Connection) -> LocalRoom:
        """Add a socket (catching up until `go_live`); subscribes the node on the first one."""
        room = self.rooms.get(room_name)
        if room is None:
            room = self.rooms[room_name] = LocalRoom(
                room_name,
                send_buffer_limit=self.settings.send_buffer_limit,
                batch_window_s=self.settings.batch_window_s,
                counters=self.counters,
                on_drop=self._dropped,
            )
            try:
                await self.broker.subscribe(room_name)
                room.last_seq = max(room.last_seq, await self.broker.last_seq(room_name))
            except BaseException as exc:
                room.ready.set_exception(exc if isinstance(exc, Exception) else Unavailable("cancelled"))
                room.ready.exception()  # consumed here; joiners see it through `await ready`
                if self.rooms.get(room_name) is room:
                    del self.rooms[room_name]
                raise
            room.ready.set_result(None)
        else:
            await asyncio.shield(room.ready)
        room.sockets[conn.id] = conn
        return room

    async def leave(self, room_name: str, conn: Connection) -> None:
        room = self.rooms.get(room_name)
        if room is None or room.sockets.pop(conn.id, None) is None:
            return
        await self._forget_if_empty(room)

    def _dropped(self, room: LocalRoom, conn: Connection) -> None:
        log(logger, logging.INFO, "slow consumer dropped", room=room.name, conn=conn.id)

    async def _forget_if_empty(self, room: LocalRoom) -> None:
        if room.sockets or self.rooms.get(room.name) is not room:
            return
        del self.rooms[room.name]
        with contextlib.suppress(Unavailable):
            await self.broker.unsubscribe(room.name)

    # -- likes, presence, pings --------------------------------------------------------------------
    def note_viewer(self, room_name: str, viewer: str) -> None:
        """Count a viewer for conversion; written to the room state with the next presence tick."""
        self._unique[room_name].add(viewer)

    def add_likes(self, room_name: str, count: int) -> None:
        self._likes[room_name] += count

    async def _flush_likes(self) -> None:
        likes, self._likes = self._likes, defaultdict(int)
        for room_name, count in likes.items():
            total = await self.state.add_likes(room_name, count)
            await self.publish_ephemeral(room_name, events.LIKES, events.Likes(count=count, total=total))

    async def _report_presence(self) -> None:
        unique, self._unique = self._unique, defaultdict(set)
        for room_name, viewers in unique.items():
            await self.state.add_unique_viewers(room_name, viewers)
        ttl = self.settings.presence_interval_s * 3
        now = time.monotonic()
        for room in list(self.rooms.values()):
            total = await self.state.report_presence(room.name, self.node, len(room.sockets), ttl)
            if total != room.viewers:
                room.viewers = total
                room.push(
                    Event(0, events.VIEWERS.name, time.time(), events.data(events.Viewers(count=total)))
                )
            # rate-limit buckets of users who went quiet are not worth keeping
            for user, (_, seen) in list(room.buckets.items()):
                if now - seen > 60:
                    del room.buckets[user]

        for room_name in [r for r in self._blocked.keys() if r not in self.rooms]:
            self._blocked.forget(room_name)

    async def _ping(self) -> None:
        for room in list(self.rooms.values()):
            room.ping_all()

    async def viewers(self, room_name: str) -> int:
        return await self.state.viewers(room_name)

    # -- per-stream blocked words (cached briefly: read on every chat message) -------------------------
    BLOCKED_CACHE_S = 2.0

    async def blocked_words(self, room_name: str) -> frozenset[str]:
        words = await self._blocked.get(room_name, functools.partial(self.state.blocked_words, room_name))
        return words if words is not None else frozenset()

    async def set_blocked_words(self, room_name: str, words: frozenset[str]) -> None:
        await self.state.set_blocked_words(room_name, words)
        self._blocked.forget(room_name)
