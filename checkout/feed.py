"""The live sales feed: a dashboard's socket gets the figures, then what changed in them.

Sockets that see the same thing (one stream, the whole show or one brand's share) share a
*group* on each node, and a group reads the figures once per tick at most — never per socket,
never per order. A read happens when the stream's key (`sales:<stream id>`, nudged by any node
after a payment, a refund, a stock move or the show's end) says something changed, and every
few seconds anyway for the room's viewers. What a group sends is the difference from what it
sent last: the changed totals, the product rows and minutes that moved. One delta is encoded
once for all its sockets; a socket too slow to take them is closed (1013), and its client's
reconnect starts again from a snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson

from chat.announce import Watcher
from checkout.figures import Figures, Scope, sales_key
from core.db.driver import StoreError
from core.errors import Unavailable
from core.identity import Account
from core.logs import log

logger = logging.getLogger("livecart.checkout")

FEED_TICK_S = 0.25  # a dashboard hears of a change within this of its nudge, in one delta per tick
REFRESH_S = 2.0  # and re-reads this often without one (the room's viewers move on their own)
QUEUE_LIMIT = 64  # deltas a socket may fall behind before it is closed


def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What a client holding `before` needs to hold `after`: changed scalars as they are, the
    product rows (by product_id) and minutes (by t) that changed; a minute that is gone (its
    orders all refunded) comes with zero orders and GMV."""
    out = {k: v for k, v in after.items() if k not in ("products", "timeline") and before.get(k) != v}
    was = {p["product_id"]: p for p in before.get("products", ())}
    products = [p for p in after["products"] if was.get(p["product_id"]) != p]
    if products:
        out["products"] = products
    old = {m["t"]: m for m in before.get("timeline", ())}
    new = {m["t"]: m for m in after["timeline"]}
    minutes = [m for t, m in new.items() if old.get(t) != m]
    minutes += [{"t": t, "orders": 0, "gmv": 0} for t in old if t not in new]
    if minutes:
        out["timeline"] = sorted(minutes, key=lambda m: m["t"])
    return out


def _frame(kind: str, data: dict[str, Any]) -> str:
    return orjson.dumps({"type": kind, "data": data}).decode()


class Subscriber:
    """One socket's place in its group: the frames waiting to be written, and whether it fell
    too far behind to go on."""

    def __init__(self, key: tuple[str, str]) -> None:
        self.key = key  # its group's
        self.frames: asyncio.Queue[str | None] = asyncio.Queue(QUEUE_LIMIT)
        self.overrun = False

    def offer(self, frame: str) -> None:
        if self.overrun:
            return
        try:
            self.frames.put_nowait(frame)
        except asyncio.QueueFull:
            self.overrun = True
            self.frames.get_nowait()  # room for the end mark: the socket is closed after the rest
            self.frames.put_nowait(None)


@dataclass(eq=False)
class _Group:
    scope: Scope
    last: dict[str, Any] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    subscribers: set[Subscriber] = field(default_factory=set)
    dirty: bool = False
    read_at: float = 0.0


class SalesFeed:
    def __init__(self, figures: Figures, watcher: Watcher) -> None:
        self._figures = figures
        self._watcher = watcher
        self._groups: dict[tuple[str, str], _Group] = {}
        self._nudged: dict[str, Any] = {}  # stream id → its watch listener
        self.reads = 0  # figures read by ticks (tests and benchmarks watch it)

    async def open(self, principal: Account | None, stream_id: str) -> tuple[Subscriber, str]:
        """A subscriber for what the caller may see of the stream (401/404/403 as `/sales`),
        and the snapshot frame to send it first."""
        scope = await self._figures.scope_of(principal, stream_id)
        group = self._groups.get(scope.key)
        if group is None:
            group = self._groups[scope.key] = _Group(scope)
            try:
                await self._watch(stream_id)
                group.last = msgspec.to_builtins(await self._figures.read(scope))
                group.read_at = time.monotonic()
            except BaseException:
                del self._groups[scope.key]
                await self._unwatch_if_unused(stream_id)
                group.ready.set()
                raise
            group.ready.set()
        else:
            await group.ready.wait()
            if group.last is None:  # its first reader failed: so does this one
                raise Unavailable("the sales figures could not be read", code="unavailable")
        subscriber = Subscriber(scope.key)
        group.subscribers.add(subscriber)
        return subscriber, _frame("snapshot", group.last)

    async def close(self, subscriber: Subscriber) -> None:
        group = self._groups.get(subscriber.key)
        if group is None:
            return
        group.subscribers.discard(subscriber)
        if not group.subscribers and group.last is not None:
            del self._groups[subscriber.key]
            await self._unwatch_if_unused(subscriber.key[0])

    async def tick(self) -> None:
        """Read each group that changed (or went unread for REFRESH_S) and send its delta."""
        now = time.monotonic()
        for group in list(self._groups.values()):
            if group.last is None or not group.subscribers:
                continue
            if not group.dirty and now - group.read_at < REFRESH_S:
                continue
            group.dirty = False
            try:
                figures = msgspec.to_builtins(await self._figures.reread(group.scope))
            except (StoreError, Unavailable) as exc:
                group.dirty = True  # the next tick tries again
                stream_id = group.scope.stream.id
                log(logger, logging.WARNING, "sales feed not read", stream=stream_id, error=str(exc))
                continue
            self.reads += 1
            group.read_at = now
            change = delta(group.last, figures)
            group.last = figures
            if change:
                frame = _frame("delta", change)
                for subscriber in group.subscribers:
                    subscriber.offer(frame)

    async def _watch(self, stream_id: str) -> None:
        if stream_id in self._nudged:
            return

        def changed() -> None:
            for (stream, _), group in self._groups.items():
                if stream == stream_id:
                    group.dirty = True

        self._nudged[stream_id] = changed
        try:
            await self._watcher.watch(sales_key(stream_id), changed)
        except BaseException:
            del self._nudged[stream_id]
            raise

    async def _unwatch_if_unused(self, stream_id: str) -> None:
        if any(stream == stream_id for stream, _ in self._groups):
            return
        listener = self._nudged.pop(stream_id, None)
        if listener is not None:
            await self._watcher.unwatch(sales_key(stream_id), listener)
