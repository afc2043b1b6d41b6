"""Streams: a host's show with its products, its state (scheduled → live → ended) and its pin.

Who may change a stream lives here, not in the HTTP handlers: its host (or an admin) may
end it and pin products (the one ownership rule, core/identity.py); anyone may read it.
State changes and pins are announced to the stream's room (keyed by the stream's id).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from chat.announce import Publisher, announce
from core import events
from core.errors import Conflict, Invalid, NotFound
from core.events import ProductOut
from core.identity import Account, Role, require, require_owner
from streaming.records import InvalidTransition, Stream, StreamState
from streaming.shop import ProductCards
from streaming.streams_sql import StreamStore

MAX_PRODUCTS_PER_STREAM = 100


class Streams:
    def __init__(self, store: StreamStore, products: ProductCards, rooms: Publisher) -> None:
        self.store = store
        self._products = products
        self._rooms = rooms
        # Called with a stream id when it ends through this node (the relay lets go at once,
        # checkout stops taking orders for it at once).
        self.ended_listeners: list[Callable[[str], Awaitable[None]]] = []

    # -- reading -------------------------------------------------------------------
    async def get(self, stream_id: str) -> Stream:
        stream = await self.store.get_stream(stream_id)
        if stream is None:
            raise NotFound(f"no stream with id {stream_id!r}", code="stream_not_found")
        return stream

    async def listing(self, limit: int = 100) -> list[Stream]:
        return await self.store.list_streams(limit)

    # -- changing ------------------------------------------------------------------
    async def create(self, principal: Account | None, title: str, product_ids: Sequence[str]) -> Stream:
        host = require(principal, Role.HOST)
        found = {p.id for p in await self._products.cards(product_ids)}
        missing = [pid for pid in product_ids if pid not in found]
        if missing:
            raise Invalid("products", f"no product with id {missing[0]!r}", code="unknown_product")
        await self._products.may_feature(host.id, product_ids)
        return await self.store.create_stream(host_id=host.id, title=title, product_ids=product_ids)

    async def check_owner(self, principal: Account | None, stream_id: str) -> Stream:
        who = require(principal, Role.HOST, Role.ADMIN)
        stream = await self.get(stream_id)
        require_owner(who, stream.host_id, "only the host of this stream may do that")
        return stream

    async def set_state(self, stream_id: str, state: StreamState) -> Stream:
        before = await self.get(stream_id)
        try:
            stream = await self.store.set_stream_state(stream_id, state, time.time())
        except InvalidTransition as exc:
            raise Conflict(str(exc), code=f"stream_{exc.current}") from None
        if stream is None:
            raise NotFound(f"no stream with id {stream_id!r}", code="stream_not_found")
        if before.state is not stream.state:
            await announce(
                self._rooms, stream_id, events.STREAM, events.StreamChanged(state=str(stream.state))
            )
            if stream.ended:
                for listener in list(self.ended_listeners):
                    await listener(stream_id)
        return stream

    async def end(self, principal: Account | None, stream_id: str) -> Stream:
        await self.check_owner(principal, stream_id)
        return await self.set_state(stream_id, StreamState.ENDED)

    async def pin(self, principal: Account | None, stream_id: str, product_id: str) -> ProductOut:
        stream = await self.check_owner(principal, stream_id)
        if stream.ended:
            raise Conflict("the stream has ended", code="stream_ended")
        if product_id not in stream.product_ids:
            raise Invalid("product_id", "that product is not in this stream", code="product_not_in_stream")
        cards = await self._products.cards([product_id])
        if not cards:
            raise Invalid("product_id", f"no product with id {product_id!r}", code="unknown_product")
        await self._products.may_feature(stream.host_id, [product_id])
        await self.store.set_pinned(stream_id, product_id)
        await announce(self._rooms, stream_id, events.PIN, events.Pinned(product=cards[0]))
        return cards[0]

    async def unpin(self, principal: Account | None, stream_id: str) -> None:
        stream = await self.check_owner(principal, stream_id)
        if stream.ended:
            raise Conflict("the stream has ended", code="stream_ended")
        if stream.pinned_product_id is None:
            return
        await self.store.set_pinned(stream_id, None)
        await announce(self._rooms, stream_id, events.UNPIN, events.Unpinned())
