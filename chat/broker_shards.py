"""The Redis broker's pub/sub connections: one per Redis server that serves a subscribed room.

A single Redis is one shard. On a Redis Cluster each master that serves the slot of a room
this node follows gets a shard of its own, so a master that goes down stops the events of its
own rooms only: its shard reconnects with capped backoff, asking the cluster again where its
rooms live now (the master back, or a replica that took over), while the other shards go on.

A shard only moves bytes; what a message means, and reading back what a shard missed while it
was away, is the broker's (chat/broker_redis.py), told through `Owner`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from redis.crc import key_slot
from redis.exceptions import RedisError

from core.logs import log

logger = logging.getLogger("livecart.broker")

CLOSE_S = 2.0  # the most a (un)subscribe or a listener's stop may take before it is given up on


class Owner(Protocol):
    def arrive(self, channel: str, message: bytes) -> None:
        """A message on `channel`, in the order the server sent it."""

    def subscribed(self, channels: Iterable[str]) -> None:
        """`channels` were (re)subscribed: what they missed meanwhile must be read back."""

    async def reroute(self, shard: Shard) -> None:
        """Before (re)connecting: move the shard's channels that another server serves now."""


def by_slot(channels: Iterable[str]) -> list[list[str]]:
    """Channels grouped by cluster slot: one SSUBSCRIBE may name channels of one slot only."""
    groups: defaultdict[int, list[str]] = defaultdict(list)
    for channel in channels:
        groups[key_slot(channel.encode())].append(channel)
    return list(groups.values())


class Shard:
    def __init__(
        self,
        name: str,
        pubsub: Callable[[], Any],
        owner: Owner,
        *,
        max_backoff_s: float,
        client: Any = None,
    ) -> None:
        self.name = name  # "host:port", or "" for a single Redis
        self._client = client  # a client of the shard's own (a cluster's master), closed with it
        self.channels: set[str] = set()
        self._pubsub_factory = pubsub
        self._owner = owner
        self._max_backoff_s = max_backoff_s
        self._pubsub: Any = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.connected = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name=f"redis-broker-{self.name or 'redis'}")

    def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            # Bounded: a listener caught inside redis-py on a connection being torn down must not
            # hold the node's shutdown; closing its connection below ends it.
            done, _ = await asyncio.wait({self._task}, timeout=CLOSE_S)
            if not done:
                log(logger, logging.WARNING, "redis pub/sub listener slow to stop", server=self.name)
        await self._close_pubsub()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()

    async def tell(self, command: str, channel: str) -> bool:
        """(Un)subscribe on the live connection; False when there is none.

        The connection can be closed or replaced while the command is on its way (a
        reconnect, close()); redis-py then fails in ways that are not RedisError. That is
        harmless: the listener subscribes exactly `self.channels` when it reconnects.
        """
        pubsub = self._pubsub
        if pubsub is None or not self.connected or self._closing:
            return False
        try:
            async with asyncio.timeout(CLOSE_S):
                await getattr(pubsub, command)(channel)
        except (RedisError, OSError, TimeoutError):
            return False
        except Exception:
            if pubsub is self._pubsub and not self._closing:
                raise
            return False
        return True

    async def _listen(self) -> None:
        backoff = 0.1
        first = True
        while True:
            try:
                self._wake.clear()
                if not self.channels:
                    await self._close_pubsub()
                    self.connected = False
                    await self._wake.wait()
                    continue
                await self._close_pubsub()
                await self._owner.reroute(self)  # a cluster's rooms may live elsewhere by now
                if not self.channels:
                    continue
                self._pubsub = self._pubsub_factory()
                for group in by_slot(self.channels):
                    await self._pubsub.ssubscribe(*group)
                self.connected = True
                if not first:
                    log(
                        logger,
                        logging.INFO,
                        "redis pub/sub reconnected",
                        server=self.name,
                        rooms=len(self.channels),
                    )
                # What was published before the subscription took effect (a reconnect, or a
                # room whose joiners were told its seq while this SSUBSCRIBE was on its way)
                # comes back from history; the broker holds live events until it is done.
                self._owner.subscribed(list(self.channels))
                first = False
                backoff = 0.1
                await self._read()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self.connected or first:
                    log(
                        logger,
                        logging.WARNING,
                        "redis pub/sub lost; reconnecting",
                        server=self.name,
                        error=str(exc),
                    )
                first = False
                self.connected = False
                await self._close_pubsub()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
            except Exception:
                logger.exception("redis listener failed; restarting it")
                first = False
                self.connected = False
                await self._close_pubsub()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)

    async def _read(self) -> None:
        pubsub = self._pubsub
        while True:
            if not self.channels:
                return  # nothing subscribed: the outer loop waits for a room
            message = await pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0)
            if message is None:
                continue
            kind = message["type"]
            if kind == "smessage":
                self._owner.arrive(message["channel"].decode(), message["data"])
            elif kind == "sunsubscribe" and message["channel"].decode() in self.channels:
                # Not asked for: the server let the channel go because its slot moved to another
                # master. Reconnecting asks the cluster where each room lives now.
                raise _SlotMoved(message["channel"].decode())

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


class _SlotMoved(RedisError):
    pass
