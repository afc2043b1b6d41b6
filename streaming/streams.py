"""Streams: a host's show with its products, its state (scheduled → live → ended) and its pin.

Who may change a stream lives here, not in the HTTP handlers: its host (or an
admin) may end it and pin products; anyone may read it. State changes and pins
are handed to an `EventPublisher` so the room can broadcast them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Protocol

import msgspec

from chat.broker import announce
from checkout.accounts import forbid_unless, require
from checkout.catalog import ProductOut, product_view
from checkout.store import Account, InvalidTransition, Product, Role, Store, Stream, StreamState
from server.errors import Conflict, Invalid, NotFound, Unavailable

logger = logging.getLogger("livecart.streams")

MAX_PRODUCTS_PER_STREAM = 100


class EventPublisher(Protocol):
    async def publish(self, stream_id: str, type: str, data: dict[str, Any]) -> object: ...


class NoEvents:
    """Publisher used until a room broker is wired in: state changes are stored, not broadcast."""

    async def publish(self, stream_id: str, type: str, data: dict[str, Any]) -> object:
        return None


class NewStream(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    products: Annotated[list[str], msgspec.Meta(max_length=MAX_PRODUCTS_PER_STREAM)] = []

    def __post_init__(self) -> None:
        self.title = self.title.strip()
        if not self.title:
            raise Invalid("title", "must not be blank", code="invalid_field")
        if len(set(self.products)) != len(self.products):
            raise Invalid("products", "lists a product more than once", code="invalid_field")


class Pin(msgspec.Struct, forbid_unknown_fields=True):
    product_id: str


class StreamOut(msgspec.Struct):
    id: str
    host_id: str
    title: str
    state: str
    products: list[ProductOut]
    pinned: ProductOut | None
    sale: dict[str, Any] | None
    viewers: int
    whip_url: str
    whep_url: str
    watch_url: str
    created_at: float
    started_at: float | None
    ended_at: float | None


class PinnedOut(msgspec.Struct):
    pinned: ProductOut


class Streams:
    def __init__(
        self,
        store: Store,
        public_url: str,
        events: EventPublisher | None = None,
        viewers: Callable[[str], Awaitable[int]] | None = None,
        sales: Callable[[str], Awaitable[dict[str, Any] | None]] | None = None,
    ) -> None:
        self._store = store
        self._public_url = public_url.rstrip("/")
        self.events: EventPublisher = events or NoEvents()
        self._viewers = viewers
        self._sales = sales
        # Called with a stream id when it ends through this node (the relay lets go at once).
        self.ended_listeners: list[Callable[[str], Awaitable[None]]] = []

    async def _announce(self, stream_id: str, type: str, data: dict[str, Any]) -> None:
        await announce(self.events, stream_id, type, data)

    # -- reading -------------------------------------------------------------------
    async def get(self, stream_id: str) -> Stream:
        stream = await self._store.get_stream(stream_id)
        if stream is None:
            raise NotFound(f"no stream with id {stream_id!r}", code="stream_not_found")
        return stream

    async def listing(self, limit: int = 100) -> list[Stream]:
        return await self._store.list_streams(limit)

    async def views(self, streams: Sequence[Stream]) -> list[StreamOut]:
        """Stream bodies with their products, fetching all products in one query."""
        wanted = list(dict.fromkeys(pid for s in streams for pid in s.product_ids))
        products = {p.id: p for p in await self._store.get_products(wanted)}
        counts = dict.fromkeys((s.id for s in streams), 0)
        if self._viewers is not None:
            for s in streams:
                if s.state is StreamState.LIVE:
                    try:
                        counts[s.id] = await self._viewers(s.id)
                    except Unavailable:
                        pass  # the count is a nicety; the stream itself is still served
        sales: dict[str, dict[str, Any] | None] = dict.fromkeys((s.id for s in streams), None)
        if self._sales is not None:
            for s in streams:
                if s.state is not StreamState.ENDED:
                    try:
                        sales[s.id] = await self._sales(s.id)
                    except Unavailable:
                        pass  # stock counters unreachable: the stream is still served
        return [self.view(s, products, counts[s.id], sales[s.id]) for s in streams]

    def view(
        self,
        stream: Stream,
        products: dict[str, Product],
        viewers: int = 0,
        sale: dict[str, Any] | None = None,
    ) -> StreamOut:
        base = f"{self._public_url}/api/streams/{stream.id}"
        pinned = products.get(stream.pinned_product_id) if stream.pinned_product_id else None
        return StreamOut(
            id=stream.id,
            host_id=stream.host_id,
            title=stream.title,
            state=str(stream.state),
            products=[product_view(products[p]) for p in stream.product_ids if p in products],
            pinned=product_view(pinned) if pinned else None,
            sale=sale,
            viewers=viewers,
            whip_url=f"{base}/whip",
            whep_url=f"{base}/whep",
            watch_url=f"{self._public_url}/watch/{stream.id}",
            created_at=stream.created_at,
            started_at=stream.started_at,
            ended_at=stream.ended_at,
        )

    # -- changing ------------------------------------------------------------------
    async def create(self, principal: Account | None, new: NewStream) -> Stream:
        host = require(principal, Role.HOST)
        found = {p.id for p in await self._store.get_products(new.products)}
        missing = [pid for pid in new.products if pid not in found]
        if missing:
            raise Invalid("products", f"no product with id {missing[0]!r}", code="unknown_product")
        return await self._store.create_stream(host_id=host.id, title=new.title, product_ids=new.products)

    async def check_owner(self, principal: Account | None, stream_id: str) -> Stream:
        who = require(principal, Role.HOST, Role.ADMIN)
        stream = await self.get(stream_id)
        forbid_unless(
            who.role is Role.ADMIN or stream.host_id == who.id,
            "only the host of this stream may do that",
        )
        return stream

    async def set_state(self, stream_id: str, state: StreamState) -> Stream:
        before = await self.get(stream_id)
        try:
            stream = await self._store.set_stream_state(stream_id, state, time.time())
        except InvalidTransition as exc:
            raise Conflict(str(exc), code=f"stream_{exc.current}") from None
        if stream is None:
            raise NotFound(f"no stream with id {stream_id!r}", code="stream_not_found")
        if before.state is not stream.state:
            await self._announce(stream_id, "stream", {"state": str(stream.state)})
            if stream.state is StreamState.ENDED:
                for listener in list(self.ended_listeners):
                    await listener(stream_id)
        return stream

    async def end(self, principal: Account | None, stream_id: str) -> Stream:
        await self.check_owner(principal, stream_id)
        return await self.set_state(stream_id, StreamState.ENDED)

    async def pin(self, principal: Account | None, stream_id: str, product_id: str) -> Product:
        stream = await self.check_owner(principal, stream_id)
        if stream.state is StreamState.ENDED:
            raise Conflict("the stream has ended", code="stream_ended")
        if product_id not in stream.product_ids:
            raise Invalid("product_id", "that product is not in this stream", code="product_not_in_stream")
        product = await self._store.get_product(product_id)
        if product is None:
            raise Invalid("product_id", f"no product with id {product_id!r}", code="unknown_product")
        await self._store.set_pinned(stream_id, product_id)
        await self._announce(stream_id, "pin", {"product": msgspec.to_builtins(product_view(product))})
        return product

    async def unpin(self, principal: Account | None, stream_id: str) -> None:
        stream = await self.check_owner(principal, stream_id)
        if stream.state is StreamState.ENDED:
            raise Conflict("the stream has ended", code="stream_ended")
        if stream.pinned_product_id is None:
            return
        await self._store.set_pinned(stream_id, None)
        await self._announce(stream_id, "unpin", {})
