"""The Store protocol written once in SQL, over a tiny driver adapter.

`SqlStore` holds every query livecart runs; `store_sqlite.py` and
`store_postgres.py` only supply a `Driver`: execute / fetchone / fetchall and
a transaction. Queries use PostgreSQL's `$1` placeholders (the SQLite driver
rewrites them to `?1`), and what the two databases spell differently lives in
`Dialect`, which is kept to a row-lock clause and the migration lock.

Drivers translate their errors into two kinds: `ConstraintViolation` (the
database refused a row, which the store turns into UnknownProduct and friends)
and `StoreError` (the database is unwell).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import astuple, dataclass, fields
from typing import Any, Protocol

from checkout import ids, migrations
from checkout.batch import Batcher
from checkout.store import (
    PRODUCT_MUTABLE_FIELDS,
    STREAM_TRANSITIONS,
    Account,
    ConstraintViolation,
    InvalidTransition,
    Product,
    Role,
    Stream,
    StreamState,
    UnknownAccount,
    UnknownProduct,
)
from checkout.store_orders import OrdersSql

Row = dict[str, Any]

# Both databases accept far more bound parameters than this; chunking keeps
# one `IN (...)` list well inside SQLite's limit whatever a caller passes.
_IN_CHUNK = 500

# Account and Product fields are named after their columns.
_ACCOUNT_COLUMNS = ", ".join(field.name for field in fields(Account))
_PRODUCT_COLUMNS = ", ".join(field.name for field in fields(Product))
_STREAM_COLUMNS = "id, host_id, title, state, pinned_product_id, created_at, started_at, ended_at"

# The timestamp column a state stamps the first time a stream enters it.
_STAMPS = {StreamState.LIVE: "started_at", StreamState.ENDED: "ended_at"}

_PRODUCT_TEXT = frozenset({"title", "currency"})
_PRODUCT_OPTIONAL_TEXT = frozenset({"image_url", "description"})
_PRODUCT_COUNTS = frozenset({"price", "stock"})


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    # Appended to a SELECT whose row the transaction will then update.
    row_lock: str
    # Run first in every migration transaction; empty when BEGIN already locks.
    migration_lock: str
    # The integer part of a non-negative number: `floor.format(expression)`.
    floor: str


class Conn(Protocol):
    """Statements with `$n` placeholders, inside or outside a transaction."""

    async def execute(self, sql: str, *args: Any) -> None: ...

    async def fetchone(self, sql: str, *args: Any) -> Row | None: ...

    async def fetchall(self, sql: str, *args: Any) -> list[Row]: ...


class Driver(Conn, Protocol):
    """One database connection (or pool). Its own execute/fetch run autocommit."""

    @property
    def dialect(self) -> Dialect: ...

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...

    def transaction(self, *, write: bool) -> AbstractAsyncContextManager[Conn]: ...

    async def insert_many(
        self, table: str, columns: Sequence[str], rows: Sequence[Row], tail: str
    ) -> list[Row]:
        """INSERT the rows (dicts by column) as one unit of work, `tail` (ON CONFLICT …,
        RETURNING …) applying to each; answers what RETURNING returned, in no set order."""
        ...


def _placeholders(first: int, count: int) -> str:
    return ", ".join(f"${n}" for n in range(first, first + count))


def _chunks(values: Sequence[str]) -> list[Sequence[str]]:
    return [values[i : i + _IN_CHUNK] for i in range(0, len(values), _IN_CHUNK)]


def _check_product_fields(values: Mapping[str, Any]) -> None:
    """Refuse values the schema could not hold faithfully (SQLite would store a
    float price or a text stock without complaint), with one message on both."""
    for key, value in values.items():
        if key in _PRODUCT_COUNTS:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"product {key} must be a non-negative integer, got {value!r}")
        elif key in _PRODUCT_TEXT:
            if not isinstance(value, str) or not value:
                raise ValueError(f"product {key} must be a non-empty string, got {value!r}")
        elif key in _PRODUCT_OPTIONAL_TEXT and not (value is None or isinstance(value, str)):
            raise ValueError(f"product {key} must be a string or None, got {value!r}")
    currency = values.get("currency")
    if currency is not None and not (len(currency) == 3 and currency.isalpha() and currency.isupper()):
        raise ValueError(f"currency must be an upper-case ISO-4217 code, got {currency!r}")


# float(): a timestamp column may hand back an int when a row was written by hand.
def _account(row: Row) -> Account:
    return Account(**{**row, "role": Role(row["role"]), "created_at": float(row["created_at"])})


def _product(row: Row) -> Product:
    return Product(**{**row, "created_at": float(row["created_at"]), "updated_at": float(row["updated_at"])})


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _stream(row: Row, product_ids: Sequence[str]) -> Stream:
    return Stream(
        id=row["id"],
        host_id=row["host_id"],
        title=row["title"],
        state=StreamState(row["state"]),
        product_ids=tuple(product_ids),
        pinned_product_id=row["pinned_product_id"],
        created_at=float(row["created_at"]),
        started_at=_optional_float(row["started_at"]),
        ended_at=_optional_float(row["ended_at"]),
    )


class SqlStore(OrdersSql):
    """The Store protocol on any Driver. Every public method is one transaction."""

    # Rush orders per INSERT at most, and INSERTs running at once (the rest wait and
    # form the next batch: the group commit).
    ORDER_BATCH = 500
    ORDER_FLUSHES = 2
    CLOSE_DRAIN_S = 10.0

    def __init__(self, url: str, driver: Driver) -> None:
        self.url = url
        self._db = driver
        self._new_orders = Batcher(
            self._insert_orders, max_batch=self.ORDER_BATCH, max_in_flight=self.ORDER_FLUSHES
        )

    # -- lifecycle ----------------------------------------------------------------
    async def connect(self) -> None:
        """Connect without touching the schema (open() = connect() + migrate())."""
        await self._db.connect()

    async def open(self) -> None:
        await self.connect()
        try:
            await self.migrate()
        except BaseException:
            await self.close()
            raise

    async def migrate(self, target: int | None = None) -> int:
        """Bring the schema forward to target (default: newest); return the version."""
        return await migrations.apply(self._db, target)

    async def close(self) -> None:
        # The orders already accepted are written first, within a bound: a database that
        # stopped answering must not hold the shutdown (their buyers hear of it anyway).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._new_orders.drain(), self.CLOSE_DRAIN_S)
        await self._db.close()

    async def ping(self) -> None:
        await self._db.ping()

    async def schema_version(self) -> int:
        return await migrations.current_version(self._db)

    # -- key/value metadata -------------------------------------------------------
    async def get_meta(self, key: str) -> str | None:
        row = await self._db.fetchone("SELECT value FROM meta WHERE key = $1", key)
        return None if row is None else str(row["value"])

    async def set_meta_if_absent(self, key: str, value: str) -> str:
        async with self._db.transaction(write=True) as conn:
            await conn.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                key,
                value,
            )
            row = await conn.fetchone("SELECT value FROM meta WHERE key = $1", key)
        if row is None:  # only if someone deleted it between the two statements
            raise AssertionError(f"meta {key!r} vanished while being set")
        return str(row["value"])

    # -- accounts -----------------------------------------------------------------
    async def create_account(self, role: Role, name: str, token_hash: str) -> Account:
        account = Account(id=ids.new_id(ids.ACCOUNT), role=Role(role), name=name, created_at=time.time())
        try:
            async with self._db.transaction(write=True) as conn:
                await conn.execute(
                    "INSERT INTO accounts (id, role, name, token_hash, created_at)"
                    " VALUES ($1, $2, $3, $4, $5)",
                    account.id,
                    account.role.value,
                    account.name,
                    token_hash,
                    account.created_at,
                )
        except ConstraintViolation as exc:
            if exc.kind == "unique":
                raise ValueError("an account with this token hash already exists") from exc
            raise
        return account

    async def get_account(self, account_id: str) -> Account | None:
        row = await self._db.fetchone(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = $1", account_id)
        return None if row is None else _account(row)

    async def account_by_token_hash(self, token_hash: str) -> Account | None:
        row = await self._db.fetchone(
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE token_hash = $1", token_hash
        )
        return None if row is None else _account(row)

    # -- catalog ------------------------------------------------------------------
    async def create_product(
        self,
        *,
        brand_id: str,
        title: str,
        price: int,
        currency: str,
        stock: int,
        image_url: str | None,
        description: str | None,
    ) -> Product:
        now = time.time()
        product = Product(
            id=ids.new_id(ids.PRODUCT),
            brand_id=brand_id,
            title=title,
            price=price,
            currency=currency,
            stock=stock,
            image_url=image_url,
            description=description,
            created_at=now,
            updated_at=now,
        )
        _check_product_fields({name: getattr(product, name) for name in PRODUCT_MUTABLE_FIELDS})
        try:
            async with self._db.transaction(write=True) as conn:
                await conn.execute(
                    f"INSERT INTO products ({_PRODUCT_COLUMNS})"
                    f" VALUES ({_placeholders(1, len(fields(Product)))})",
                    *astuple(product),
                )
        except ConstraintViolation as exc:
            if exc.kind == "foreign_key":
                raise UnknownAccount(brand_id) from exc
            raise
        return product

    async def get_product(self, product_id: str) -> Product | None:
        row = await self._db.fetchone(f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE id = $1", product_id)
        return None if row is None else _product(row)

    async def get_products(self, product_ids: Sequence[str]) -> list[Product]:
        wanted = list(dict.fromkeys(product_ids))  # first occurrence keeps its place
        found: dict[str, Product] = {}
        async with self._db.transaction(write=False) as conn:
            for chunk in _chunks(wanted):
                rows = await conn.fetchall(
                    f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE id IN ({_placeholders(1, len(chunk))})",
                    *chunk,
                )
                found.update((row["id"], _product(row)) for row in rows)
        return [found[product_id] for product_id in wanted if product_id in found]

    async def update_product(self, product_id: str, changes: Mapping[str, Any]) -> Product | None:
        unknown = set(changes) - PRODUCT_MUTABLE_FIELDS
        if unknown:
            raise ValueError(f"product fields that cannot be changed: {', '.join(sorted(unknown))}")
        _check_product_fields(changes)
        if not changes:
            return await self.get_product(product_id)
        columns = sorted(changes)
        # Column names come only from PRODUCT_MUTABLE_FIELDS (checked above), so
        # formatting them into the statement cannot inject anything.
        assignments = ", ".join(f"{column} = ${n}" for n, column in enumerate(columns, start=3))
        async with self._db.transaction(write=True) as conn:
            row = await conn.fetchone(
                f"UPDATE products SET updated_at = $2, {assignments}"
                f" WHERE id = $1 RETURNING {_PRODUCT_COLUMNS}",
                product_id,
                time.time(),
                *(changes[column] for column in columns),
            )
        return None if row is None else _product(row)

    # -- streams ------------------------------------------------------------------
    async def create_stream(self, *, host_id: str, title: str, product_ids: Sequence[str]) -> Stream:
        if isinstance(product_ids, str):
            raise TypeError("product_ids must be a sequence of ids, not one string")
        repeated = sorted(pid for pid, n in Counter(product_ids).items() if n > 1)
        if repeated:
            raise ValueError(f"products listed more than once: {', '.join(repeated)}")
        stream = Stream(
            id=ids.new_id(ids.STREAM),
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
                f"SELECT {_STREAM_COLUMNS} FROM streams ORDER BY"
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

    # -- helpers ------------------------------------------------------------------
    async def _read_stream(self, conn: Conn, stream_id: str) -> Stream | None:
        row = await conn.fetchone(f"SELECT {_STREAM_COLUMNS} FROM streams WHERE id = $1", stream_id)
        if row is None:
            return None
        links = await self._product_ids(conn, [stream_id])
        return _stream(row, links.get(stream_id, []))

    async def _product_ids(self, conn: Conn, stream_ids: Sequence[str]) -> dict[str, list[str]]:
        """Each stream's product ids in the host's order."""
        links: dict[str, list[str]] = {}
        for chunk in _chunks(stream_ids):
            rows = await conn.fetchall(
                "SELECT stream_id, product_id FROM stream_products"
                f" WHERE stream_id IN ({_placeholders(1, len(chunk))})"
                " ORDER BY stream_id, position",
                *chunk,
            )
            for row in rows:
                links.setdefault(row["stream_id"], []).append(row["product_id"])
        return links
