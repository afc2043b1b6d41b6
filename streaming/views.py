"""How a stream looks from outside: its body over HTTP and in its room's `hello`.

A stream body carries its products (cards from the catalog), its pin, its running sale,
its viewer count (from the room) and its WHIP/WHEP/watch URLs. `StreamViews` is also what
a stream's room asks about its subject (chat/subjects.py): who moderates it, and its body.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from core.errors import NotFound, Unavailable
from core.events import ProductOut, SaleOut
from core.recent import Recent
from streaming.records import Stream, StreamState
from streaming.shop import ProductCards, RunningSales
from streaming.streams_sql import StreamStore


class StreamOut(msgspec.Struct):
    id: str
    host_id: str
    host_name: str
    title: str
    state: str
    products: list[ProductOut]
    pinned: ProductOut | None
    sale: SaleOut | None
    viewers: int
    whip_url: str
    whep_url: str
    hls_url: str  # LL-HLS of an H.264 stream while it is live (others answer 409/404 there)
    watch_url: str
    created_at: float
    started_at: float | None
    ended_at: float | None


class StreamViews:
    OWNER_TTL_S = 3600.0

    def __init__(
        self,
        store: StreamStore,
        public_url: str,
        products: ProductCards,
        sales: RunningSales,
        viewers: Callable[[str], Awaitable[int]],
        names: Callable[[Sequence[str]], Awaitable[dict[str, str]]],
    ) -> None:
        self._store = store
        self._names = names
        self._public_url = public_url.rstrip("/")
        self._products = products
        self._sales = sales
        self._viewers = viewers
        self._owners: Recent[str, str] = Recent(self.OWNER_TTL_S)

    async def views(self, streams: Sequence[Stream]) -> list[StreamOut]:
        """Stream bodies with their products, fetching all products in one query."""
        wanted = list(dict.fromkeys(pid for s in streams for pid in s.product_ids))
        products = {p.id: p for p in await self._products.cards(wanted)}
        hosts = await self._names([s.host_id for s in streams])
        counts = dict.fromkeys((s.id for s in streams), 0)
        for s in streams:
            if s.state is StreamState.LIVE:
                try:
                    counts[s.id] = await self._viewers(s.id)
                except Unavailable:
                    pass  # the count is a nicety; the stream itself is still served
        sales: dict[str, SaleOut | None] = dict.fromkeys((s.id for s in streams), None)
        for s in streams:
            if not s.ended:
                try:
                    sales[s.id] = await self._sales.current_view(s.id)
                except Unavailable:
                    pass  # stock counters unreachable: the stream is still served
        return [self.view(s, products, hosts.get(s.host_id, ""), counts[s.id], sales[s.id]) for s in streams]

    def view(
        self,
        stream: Stream,
        products: dict[str, ProductOut],
        host_name: str = "",
        viewers: int = 0,
        sale: SaleOut | None = None,
    ) -> StreamOut:
        base = f"{self._public_url}/api/streams/{stream.id}"
        return StreamOut(
            id=stream.id,
            host_id=stream.host_id,
            host_name=host_name,
            title=stream.title,
            state=str(stream.state),
            products=[products[p] for p in stream.product_ids if p in products],
            pinned=products.get(stream.pinned_product_id) if stream.pinned_product_id else None,
            sale=sale,
            viewers=viewers,
            whip_url=f"{base}/whip",
            whep_url=f"{base}/whep",
            hls_url=f"{base}/hls/live.m3u8",
            watch_url=f"{self._public_url}/watch/{stream.id}",
            created_at=stream.created_at,
            started_at=stream.started_at,
            ended_at=stream.ended_at,
        )

    # -- what the stream's room asks (chat.subjects.Subjects) -----------------------------------
    async def _stream(self, stream_id: str) -> Stream:
        stream = await self._store.get_stream(stream_id)
        if stream is None:
            raise NotFound(f"no stream with id {stream_id!r}", code="stream_not_found")
        return stream

    async def owner(self, room: str) -> str:
        """A stream's host never changes: known once, it is never read again for a join."""
        host = await self._owners.get(room, functools.partial(self._host_of, room))
        assert host is not None  # a missing stream raises
        return host

    async def _host_of(self, stream_id: str) -> str:
        return (await self._stream(stream_id)).host_id

    async def describe(self, room: str) -> dict[str, Any]:
        (view,) = await self.views([await self._stream(room)])
        described: dict[str, Any] = msgspec.to_builtins(view)
        return described
