"""What one socket may say in a room: chat, likes, and (for the host) moderation.

Every refusal is an `error` event to that socket alone with a stable code
(`read_only`, `rate_limited`, `muted`, `too_long`, …) and changes nothing;
a socket that keeps sending bad frames is closed with 1008. Chat text is kept
as data: stripped of control characters, never interpreted as markup.
"""

from __future__ import annotations

import functools
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import msgpack
import orjson

from chat.fanout import Connection, LocalRoom
from chat.hub import Hub
from chat.subjects import Checkout
from core import events
from core.errors import LivecartError, Unavailable
from core.identity import Account, owns

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class ChatLimits:
    max_text: int = 500
    max_frame_bytes: int = 4096
    chat_per_s: float = 0.5  # sustained messages per second per user
    chat_burst: int = 5
    host_factor: float = 4.0  # hosts may talk faster
    max_like: int = 50
    likes_per_s: float = 20.0  # sustained hearts per second per user (a frame's count spends them)
    likes_burst: int = 100
    abuse_errors: int = 10  # errors within abuse_window_s before the socket is closed
    abuse_window_s: float = 60.0
    mute_default_s: float = 600.0
    mute_max_s: float = 7 * 24 * 3600.0


@functools.lru_cache(maxsize=256)
def _blocked_pattern(words: frozenset[str]) -> re.Pattern[str] | None:
    if not words:
        return None
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def contains_blocked(text: str, words: frozenset[str]) -> bool:
    pattern = _blocked_pattern(words)
    return pattern is not None and pattern.search(text) is not None


class Session:
    def __init__(
        self,
        hub: Hub,
        room: LocalRoom,
        conn: Connection,
        *,
        owner_id: str,
        global_blocked: frozenset[str],
        limits: ChatLimits,
        checkout: Checkout | None = None,
    ) -> None:
        self.hub = hub
        self.room = room
        self.conn = conn
        self.user = conn.user
        self.owner_id = owner_id  # who moderates the room: a stream's host
        self.global_blocked = global_blocked
        self.limits = limits
        self.checkout = checkout
        self.should_close = False
        self._errors: list[float] = []

    @property
    def is_host(self) -> bool:
        return self.user is not None and owns(self.user, self.owner_id)

    def error(
        self,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        until: float | None = None,
        field: str | None = None,
        key: str | None = None,
        abuse: bool = True,
    ) -> None:
        """Tell this socket alone; `abuse` counts it towards closing the socket (a buy refused
        because the sale sold out is not the buyer's fault)."""
        now = time.time()
        payload = events.ErrorData(code, message, retry_after=retry_after, until=until, field=field, key=key)
        self.conn.send(events.message(events.ERROR, payload, seq=self.room.last_seq))
        if not abuse:
            return
        self._errors = [t for t in self._errors if now - t < self.limits.abuse_window_s] + [now]
        if len(self._errors) >= self.limits.abuse_errors:
            self.should_close = True

    # -- frames ------------------------------------------------------------------------------
    async def handle(self, raw: str | bytes) -> None:
        if len(raw) > self.limits.max_frame_bytes:
            self.error("too_large", f"frames are limited to {self.limits.max_frame_bytes} bytes")
            return
        if isinstance(raw, bytes):
            if not self.conn.binary:
                self.error("malformed", "binary frames need the livecart.msgpack subprotocol")
                return
            try:
                message = msgpack.unpackb(raw, raw=False, strict_map_key=True)
            except Exception:
                self.error("malformed", "the frame is not valid msgpack")
                return
        else:
            try:
                message = orjson.loads(raw)
            except orjson.JSONDecodeError:
                self.error("malformed", "the frame is not valid JSON")
                return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            self.error("malformed", 'expected an object with a "type"')
            return
        kind = message["type"]
        handler = {"chat": self._chat, "like": self._like, "moderate": self._moderate, "buy": self._buy}.get(
            kind
        )
        if handler is None:
            self.error("unknown_type", f"unknown message type {kind[:40]!r}")
            return
        if self.user is None:
            self.error("read_only", "sign in to take part; anonymous sockets can only watch")
            return
        try:
            await handler(message, self.user)
        except Unavailable as exc:
            self.error(exc.code, exc.message)

    # -- chat ---------------------------------------------------------------------------------
    def _allow(self, key: str, rate: float, burst: float, cost: float = 1.0) -> float:
        """Token bucket per key (a user's chat, a user's hearts) per room on this node; spends
        `cost` tokens and returns 0, or the seconds to wait before it could."""
        now = time.monotonic()
        tokens, last = self.room.buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens < cost:
            self.room.buckets[key] = (tokens, now)
            return (cost - tokens) / rate
        self.room.buckets[key] = (tokens - cost, now)
        return 0.0

    async def _chat(self, message: dict[str, Any], user: Account) -> None:
        text = message.get("text")
        if not isinstance(text, str):
            self.error("invalid", '"text" must be a string')
            return
        text = _CONTROL.sub("", text).strip()
        if not text:
            self.error("empty", "the message is empty")
            return
        if len(text) > self.limits.max_text:
            self.error("too_long", f"messages are limited to {self.limits.max_text} characters")
            return
        factor = self.limits.host_factor if self.is_host else 1.0
        wait = self._allow(user.id, self.limits.chat_per_s * factor, self.limits.chat_burst * factor)
        if wait:
            self.error("rate_limited", "you are sending messages too fast", retry_after=round(wait, 2))
            return
        banned, muted_until = await self.hub.state.standing(self.room.name, user.id)
        if banned:
            self.error("banned", "you are banned from this stream")
            self.should_close = True
            return
        if muted_until > time.time():
            self.error("muted", "the host has muted you for now", until=muted_until)
            return
        words = self.global_blocked | await self.hub.blocked_words(self.room.name)
        if contains_blocked(text, words):
            self.error("blocked_word", "the message contains a word this stream does not allow")
            return
        author = events.Author(id=user.id, name=user.name, role=str(user.role))
        line = events.ChatLine(id="msg_" + secrets.token_hex(8), user=author, text=text)
        await self.hub.publish(self.room.name, events.CHAT, line)

    async def _like(self, message: dict[str, Any], user: Account) -> None:
        count = message.get("count", 1)
        if type(count) is not int or not 1 <= count <= self.limits.max_like:
            self.error("invalid", f'"count" must be an integer from 1 to {self.limits.max_like}')
            return
        limits = self.limits
        wait = self._allow(f"likes:{user.id}", limits.likes_per_s, limits.likes_burst, cost=count)
        if wait:
            self.error("rate_limited", "you are sending hearts too fast", retry_after=round(wait, 2))
            return
        self.hub.add_likes(self.room.name, count)

    # -- buying ----------------------------------------------------------------------------------
    async def _buy(self, message: dict[str, Any], user: Account) -> None:
        """`{"type": "buy", "key", "product_id", "quantity"?, "sale_id"?}`: an order in this room's
        stream, answered to this socket alone (`order`, or `error` with the buy's key)."""
        key = message.get("key")
        if not isinstance(key, str):
            self.error("idempotency_key_required", 'a buy needs its "key" (as Idempotency-Key)')
            return
        if self.checkout is None:
            self.error("unknown_type", "this room sells nothing", key=key)
            return
        fields = {k: v for k, v in message.items() if k not in ("type", "key")}
        try:
            order, created = await self.checkout.buy(user, self.room.name, key, fields)
        except LivecartError as exc:
            # bad input counts as abuse; a refusal of a good tap (sold out, over) does not
            bad = exc.status in (400, 422)
            field = exc.extra.get("field")
            self.error(exc.code, exc.message, key=key, field=field, abuse=bad)
            return
        self.conn.send(
            events.message(events.ORDER, events.OrderPlaced(key, created, order), seq=self.room.last_seq)
        )

    # -- moderation ---------------------------------------------------------------------------------
    async def _moderate(self, message: dict[str, Any], user: Account) -> None:
        if not self.is_host:
            self.error("forbidden", "only the host of this stream may moderate")
            return
        action = message.get("action")
        if action == "delete":
            message_id = message.get("message_id")
            if not isinstance(message_id, str) or not message_id:
                self.error("invalid", 'delete needs a "message_id"')
                return
            await self.hub.publish(
                self.room.name, events.MODERATION, events.Moderation(action="delete", message_id=message_id)
            )
            return
        if action not in ("mute", "ban"):
            self.error("invalid", '"action" must be delete, mute or ban')
            return
        user_id = message.get("user_id")
        if not isinstance(user_id, str) or not user_id:
            self.error("invalid", f'{action} needs a "user_id"')
            return
        if user_id in (self.owner_id, user.id):
            self.error("invalid", f"the host cannot {action} themselves")
            return
        if action == "mute":
            duration = message.get("duration_s", self.limits.mute_default_s)
            if (
                not isinstance(duration, int | float)
                or isinstance(duration, bool)
                or not 0 < duration <= self.limits.mute_max_s
            ):
                self.error("invalid", f'"duration_s" must be between 0 and {self.limits.mute_max_s:g}')
                return
            until = time.time() + float(duration)
            await self.hub.state.mute(self.room.name, user_id, until)
            await self.hub.publish(
                self.room.name,
                events.MODERATION,
                events.Moderation(action="mute", user_id=user_id, until=until),
            )
            return
        await self.hub.state.ban(self.room.name, user_id)
        await self.hub.publish(
            self.room.name, events.MODERATION, events.Moderation(action="ban", user_id=user_id)
        )
