"""What checkout asks of the streams it sells in, declared here and answered by streaming.

Checkout never imports streaming: server/app.py hands it streaming's stream store, which
fits `StreamLookup` as it is (a stream record has these attributes).
"""

from __future__ import annotations

from typing import Protocol

from core.errors import NotFound
from core.identity import Account, Role, require, require_owner


class StreamFacts(Protocol):
    """A stream as checkout sees it: who hosts it, what it shows, whether it is over."""

    @property
    def id(self) -> str: ...

    @property
    def host_id(self) -> str: ...

    @property
    def product_ids(self) -> tuple[str, ...]: ...

    @property
    def ended(self) -> bool: ...

    @property
    def ended_at(self) -> float | None: ...


class StreamLookup(Protocol):
    async def get_stream(self, stream_id: str) -> StreamFacts | None: ...


async def own_stream(streams: StreamLookup, principal: Account | None, stream_id: str) -> StreamFacts:
    """The stream, if the caller hosts it (or is the admin): 401, 404, 403 in that order."""
    who = require(principal, Role.HOST, Role.ADMIN)
    stream = await streams.get_stream(stream_id)
    if stream is None:
        raise NotFound(f"no stream with id {stream_id!r}", code="stream_not_found")
    require_owner(who, stream.host_id, "only the host of this stream may do that")
    return stream
