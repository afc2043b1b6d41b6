"""The `streams` and `stream_products` tables: a host's shows and the products each one showcases."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

from core import ids
from core.accounts import UnknownAccount
from core.db.driver import Conn, ConstraintViolation, Driver, Row, chunks, optional_float, placeholders
from streaming.records import STREAM_TRANSITIONS, InvalidTransition, Stream, StreamState, UnknownProduct

STREAM = "str"  # id prefix

_COLUMNS = "id, host_id, title, state, pinned_product_id, created_at, started_at, ended_at"

# The timestamp column a state stamps the first time a stream enters it.
_STAMPS = {StreamState.LIVE: "started_at", StreamState.ENDED: "ended_at"}


def _stream(row: Row, product_ids: Sequence[str]) -> Stream:
    return Stream(
        id=row["id"],
        host_id=row["host_id"],
        title=row["title"],
        state=StreamState(row["state"]),
        product_ids=tuple(product_ids),
        pinned_product_id=row["pinned_product_id"],
        created_at=float(row["created_at"]),
        started_at=optional_float(row["started_at"]),
        ended_at=optional_float(row["ended_at"]),
    )


class StreamStore:
    """Every method is one transaction."""

    def __init__(self, db: Driver) -> None:
        self._db = db

    async def create_stream(self, *, host_id: str, title: str, product_ids: Sequence[str]) -> Stream:
        if isinstance(product_ids, str):
            raise TypeError("product_ids must be a sequence of ids, not one string")
        repeated = sorted(pid for pid, n in Counter(product_ids).items() if n > 1)
        if repeated:
            raise ValueError(f"products listed more than once: {', '.join(repeated)}")
        stream = Stream(
            id=ids.new_id(STREAM),
            host_id=host_id,
            title=title,
            state=StreamState.SCHEDULED,
            product_ids=tuple(product_ids),
            pinned_product_id=None,
            created_at=time.time(),
            started_at=None,
            ended_at=None,
        )
        # Raising inside the transaction rolls back the stream row too: a failed
        # create leaves nothing behind.
        async with self._db.transaction(write=True) as conn:
            try:
                await conn.execute(
                    "INSERT INTO streams (id, host_id, title, state, created_at) VALUES ($1, $2, $3, $4, $5)",
                    stream.id,
                    stream.host_id,
                    stream.title,
                    stream.state.value,
                    stream.created_at,
                )
            except ConstraintViolation as exc:
                if exc.kind == "foreign_key":
                    raise UnknownAccount(host_id) from exc
                raise
            for position, product_id in enumerate(stream.product_ids):
                try:
                    await conn.execute(
                        "INSERT INTO stream_products (stream_id, position, product_id) VALUES ($1, $2, $3)",
                        stream.id,
                        position,
                        product_id,
                    )
                except ConstraintViolation as exc:
                    if exc.kind == "foreign_key":
                        raise UnknownProduct(product_id) from exc
                    raise
        return stream

    async def get_stream(self, stream_id: str) -> Stream | None:
        async with self._db.transaction(write=False) as conn:
            return await self._read_stream(conn, stream_id)

    async def list_streams(self, limit: int = 100) -> list[Stream]:
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        async with self._db.transaction(write=False) as conn:
            rows = await conn.fetchall(
                f"SELECT {_COLUMNS} FROM streams ORDER BY"
                " CASE state WHEN 'live' THEN 0 WHEN 'scheduled' THEN 1 ELSE 2 END,"
                " CASE state WHEN 'live' THEN started_at WHEN 'ended' THEN ended_at"
                " ELSE created_at END DESC,"
                " created_at DESC, id"
                " LIMIT $1",
                limit,
            )
            links = await self._product_ids(conn, [row["id"] for row in rows])
        return [_stream(row, links.get(row["id"], [])) for row in rows]

    async def set_stream_state(self, stream_id: str, state: StreamState, at: float) -> Stream | None:
        wanted = StreamState(state)
        async with self._db.transaction(write=True) as conn:
            # Locking the row makes read-check-write one step against a
            # concurrent transition (SQLite's BEGIN IMMEDIATE already has).
            row = await conn.fetchone(
                f"SELECT state FROM streams WHERE id = $1{self._db.dialect.row_lock}", stream_id
            )
            if row is None:
                return None
            current = StreamState(row["state"])
            if current != wanted:
                if (current, wanted) not in STREAM_TRANSITIONS:
                    raise InvalidTransition(current, wanted)
                stamp = _STAMPS[wanted]  # every allowed move enters live or ended
                await conn.execute(
                    f"UPDATE streams SET state = $2, {stamp} = COALESCE({stamp}, $3) WHERE id = $1",
                    stream_id,
                    wanted.value,
                    float(at),
                )
            return await self._read_stream(conn, stream_id)

    async def set_pinned(self, stream_id: str, product_id: str | None) -> Stream | None:
        """Pin one of the stream's own products (UnknownProduct otherwise), or unpin."""
        async with self._db.transaction(write=True) as conn:
            if product_id is not None:
                listed = await conn.fetchone(
                    "SELECT position FROM stream_products WHERE stream_id = $1 AND product_id = $2",
                    stream_id,
                    product_id,
                )
                if listed is None:
                    if await conn.fetchone("SELECT id FROM streams WHERE id = $1", stream_id):
                        raise UnknownProduct(
                            product_id, f"product {product_id} is not shown in stream {stream_id}"
                        )
                    return None
            updated = await conn.fetchone(
                "UPDATE streams SET pinned_product_id = $2 WHERE id = $1 RETURNING id",
                stream_id,
                product_id,
            )
            if updated is None:
                return None
            return await self._read_stream(conn, stream_id)

    async def _read_stream(self, conn: Conn, stream_id: str) -> Stream | None:
        row = await conn.fetchone(f"SELECT {_COLUMNS} FROM streams WHERE id = $1", stream_id)
        if row is None:
            return None
        links = await self._product_ids(conn, [stream_id])
        return _stream(row, links.get(stream_id, []))

    async def _product_ids(self, conn: Conn, stream_ids: Sequence[str]) -> dict[str, list[str]]:
        """Each stream's product ids in the host's order."""
        links: dict[str, list[str]] = {}
        for chunk in chunks(stream_ids):
            rows = await conn.fetchall(
                "SELECT stream_id, product_id FROM stream_products"
                f" WHERE stream_id IN ({placeholders(1, len(chunk))})"
                " ORDER BY stream_id, position",
                *chunk,
            )
            for row in rows:
                links.setdefault(row["stream_id"], []).append(row["product_id"])
        return links
