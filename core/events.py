"""The catalogue of room events: every event type a room's sockets can receive, with its payload.

A room event travels as `{"seq": int, "type": str, "ts": float, "data": {...}}` (API.md, Live
events). Each `EventType` here names one `type` and the msgspec Struct its `data` has, so a
publisher cannot send a payload of the wrong shape (mypy checks `publish(room, SALE, sale)`),
and the fan-out reads what it needs to know of an event from the catalogue, not from a name:
whether it is ephemeral (no seq, no history) and whether it changes what a room's `hello`
shows of its subject. The shapes of products and sales live here too, because events carry
them; their packages build them. tests/test_events.py checks this table against API.md's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

P = TypeVar("P", bound=msgspec.Struct)


# -- shapes events carry ---------------------------------------------------------------------
class Author(msgspec.Struct):
    """Who said something: a chat line's author, a socket's own account in `hello`."""

    id: str
    name: str
    role: str


class ProductOut(msgspec.Struct):
    id: str
    brand_id: str
    title: str
    price: int  # minor units
    currency: str
    stock: int
    image_url: str | None
    description: str | None
    min_price: int  # the lowest price a sale of it may ask (0: no floor)


class SaleOut(msgspec.Struct):
    id: str
    product_id: str
    price: int
    currency: str
    quantity: int
    remaining: int
    per_viewer_limit: int
    starts_at: float
    ends_at: float
    state: str  # live | sold_out | ended


# -- payloads ------------------------------------------------------------------------------------
class Hello(msgspec.Struct):
    stream: dict[str, Any]  # the room's subject as its owner describes it (a stream body)
    you: Author | None
    seq: int


class ChatLine(msgspec.Struct):
    id: str
    user: Author
    text: str


class Likes(msgspec.Struct):
    count: int  # since the last tick
    total: int


class Pinned(msgspec.Struct):
    product: ProductOut


class Unpinned(msgspec.Struct):
    pass


class StockLeft(msgspec.Struct):
    product_id: str
    remaining: int


class Purchase(msgspec.Struct):
    name: str  # the buyer's first name only
    product_id: str
    quantity: int


class Viewers(msgspec.Struct):
    count: int


class Moderation(msgspec.Struct, omit_defaults=True):
    action: str  # delete | mute | ban
    message_id: str | None = None
    user_id: str | None = None
    until: float | None = None  # mute


class StreamChanged(msgspec.Struct):
    state: str


class Resync(msgspec.Struct):
    seq: int


class ErrorData(msgspec.Struct, omit_defaults=True):
    code: str
    message: str
    retry_after: float | None = None  # rate_limited
    until: float | None = None  # muted
    field: str | None = None  # a buy's field that is not valid
    key: str | None = None  # the refused buy's idempotency key


class OrderPlaced(msgspec.Struct):
    """The answer to a `buy` frame, to its socket alone: the order as `POST /api/orders` answers
    it, and whether this frame created it (False: a retry of the same key)."""

    key: str
    created: bool
    order: dict[str, Any]


# -- the catalogue -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EventType(Generic[P]):
    name: str
    payload: type[P]
    # Not kept in history and without a seq of its own (it repeats the room's latest).
    ephemeral: bool = False
    # After it, a room's remembered `hello` description of its subject is stale.
    changes_view: bool = False


HELLO = EventType("hello", Hello)
CHAT = EventType("chat", ChatLine)
LIKES = EventType("likes", Likes, ephemeral=True)
PIN = EventType("pin", Pinned, changes_view=True)
UNPIN = EventType("unpin", Unpinned, changes_view=True)
SALE = EventType("sale", SaleOut, changes_view=True)
SALE_END = EventType("sale_end", SaleOut, changes_view=True)
STOCK = EventType("stock", StockLeft)
PURCHASE = EventType("purchase", Purchase)
VIEWERS = EventType("viewers", Viewers, ephemeral=True)
MODERATION = EventType("moderation", Moderation)
STREAM = EventType("stream", StreamChanged, changes_view=True)
RESYNC = EventType("resync", Resync)
ERROR = EventType("error", ErrorData)
ORDER = EventType("order", OrderPlaced)

CATALOGUE: dict[str, EventType[Any]] = {
    kind.name: kind
    for kind in (
        HELLO, CHAT, LIKES, PIN, UNPIN, SALE, SALE_END, STOCK, PURCHASE, VIEWERS, MODERATION, STREAM,
        RESYNC, ERROR, ORDER,
    )
}  # fmt: skip
VIEW_CHANGING = frozenset(name for name, kind in CATALOGUE.items() if kind.changes_view)


def data(payload: msgspec.Struct) -> dict[str, Any]:
    """A payload as the plain dict that brokers carry and sockets receive."""
    built: dict[str, Any] = msgspec.to_builtins(payload)
    return built


def message(kind: EventType[P], payload: P, *, seq: int | None = None) -> dict[str, Any]:
    """One event as a socket receives it, for what goes to one socket alone (hello, errors)."""
    event: dict[str, Any] = {"type": kind.name, "ts": time.time(), "data": data(payload)}
    if seq is not None:
        event["seq"] = seq
    return event
