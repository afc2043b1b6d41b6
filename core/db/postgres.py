"""PostgreSQL driver: an asyncpg pool shared by all requests.

For production and for several machines. Schema isolation: a `search_path`
query parameter on the URL (`postgresql://u@host/db?search_path=livecart`) or
the `search_path=` constructor argument (which wins) is sent as a connection
setting, so livecart's tables live in that schema; it must already exist.
Tests use this to give every test a fresh schema in one database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import orjson

from core.db.driver import Conn, ConstraintKind, ConstraintViolation, Dialect, InvalidValue, Row, StoreError

# Every livecart process agrees on this key, so only one migrates at a time;
# other users of advisory locks in the same database would need to avoid it.
_MIGRATION_LOCK_KEY = 0x6C69766563617274  # "livecart"

_DIALECT = Dialect(
    name="postgresql",
    row_lock=" FOR UPDATE",
    migration_lock=f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})",
    floor="FLOOR({})",
)

# Most specific first: the lookup takes the first class the error is an instance of.
_CONSTRAINT_KINDS: tuple[tuple[type[Exception], ConstraintKind], ...] = (
    (asyncpg.ForeignKeyViolationError, "foreign_key"),
    (asyncpg.UniqueViolationError, "unique"),
    (asyncpg.CheckViolationError, "check"),
    (asyncpg.NotNullViolationError, "not_null"),
    (asyncpg.IntegrityConstraintViolationError, "other"),
)

# Connection refused or dropped, timeouts, server-side errors, a connection left mid-operation
# (asyncpg's InternalClientError), and values it cannot encode (a lone surrogate).
_DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
    UnicodeError,
)

# A connection that failed this way cannot be trusted with the next statement: the server side
# is gone, or asyncpg's protocol was left mid-operation. It is closed, and the pool makes a new one.
_BROKEN: tuple[type[BaseException], ...] = (
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.PostgresConnectionError,
    OSError,
    TimeoutError,
)

_PING_TIMEOUT_S = 5.0
_CLIENT_MARGIN_S = 2.0


def split_search_path(url: str) -> tuple[str, str | None]:
    """The URL without its `search_path` query parameter, and that parameter."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    search_path = next((value for key, value in query if key == "search_path"), None)
    rest = [(key, value) for key, value in query if key != "search_path"]
    return urlunsplit(parts._replace(query=urlencode(rest))), search_path or None


def _translate(exc: BaseException) -> Exception:
    for cls, kind in _CONSTRAINT_KINDS:
        if isinstance(exc, cls):
            return ConstraintViolation(kind, str(exc))
    if isinstance(exc, asyncpg.DataError | UnicodeError):  # e.g. a NUL in text: this value, not the database
        return InvalidValue(f"PostgreSQL cannot store this value: {exc}")
    if isinstance(exc, TimeoutError | asyncpg.QueryCanceledError):
        return StoreError("PostgreSQL did not answer in time")
    return StoreError(f"PostgreSQL: {exc}")


async def _keep_session(connection: Any) -> None:
    """What a connection needs before going back to the pool: nothing. asyncpg's default
    (advisory-unlock, CLOSE ALL, UNLISTEN, RESET ALL) is one more round trip per query; the
    stores leave no session state behind (their locks are transaction-scoped, they never LISTEN
    or SET), and RESET ALL would only restore the search_path it connected with."""


class _Statements:
    """Runs statements on one asyncpg connection, translating its errors; a connection that
    broke is terminated, so that the pool it goes back to replaces it."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn  # asyncpg.Connection

    def _failed(self, exc: BaseException) -> Exception:
        if isinstance(exc, _BROKEN):
            # (asyncpg may have let go of a connection the server closed already)
            with contextlib.suppress(asyncpg.InterfaceError):
                self._conn.terminate()
        return _translate(exc)

    async def execute(self, sql: str, *args: Any) -> None:
        try:
            await self._conn.execute(sql, *args)
        except _DRIVER_ERRORS as exc:
            raise self._failed(exc) from exc

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        try:
            record = await self._conn.fetchrow(sql, *args)
        except _DRIVER_ERRORS as exc:
            raise self._failed(exc) from exc
        return None if record is None else dict(record)

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        try:
            records = await self._conn.fetch(sql, *args)
        except _DRIVER_ERRORS as exc:
            raise self._failed(exc) from exc
        return [dict(record) for record in records]


class PostgresDriver:
    """A pool of asyncpg connections. With `statement_timeout_s`, PostgreSQL cancels a statement
    that runs (or waits on a lock) longer, and the client gives up a moment after; with
    `pool_timeout_s`, a caller waits at most that long for a free connection. Either way the
    caller gets a StoreError (503 at the edge), never an unbounded wait. Without them (the
    migrations: an index may take minutes) nothing is bounded."""

    def __init__(
        self,
        url: str,
        *,
        search_path: str | None = None,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout_s: float = 10.0,
        statement_timeout_s: float | None = None,
        pool_timeout_s: float | None = None,
    ) -> None:
        self.url = url
        self._dsn, url_search_path = split_search_path(url)
        self.search_path = search_path or url_search_path
        self._min_size = min_size
        self._max_size = max_size
        self._connect_timeout_s = connect_timeout_s
        self._statement_timeout_s = statement_timeout_s
        self._pool_timeout_s = pool_timeout_s
        self._pool: Any = None  # asyncpg.Pool once connected

    @property
    def dialect(self) -> Dialect:
        return _DIALECT

    async def connect(self) -> None:
        if self._pool is not None:
            return
        settings = {"search_path": self.search_path} if self.search_path else {}
        command_timeout = None
        if self._statement_timeout_s is not None:
            settings["statement_timeout"] = str(max(1, int(self._statement_timeout_s * 1000)))
            # the server cancels first; the client's own bound only catches a silent network
            command_timeout = self._statement_timeout_s + _CLIENT_MARGIN_S
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=self._connect_timeout_s,
                command_timeout=command_timeout,
                server_settings=settings,
                reset=_keep_session,
            )
        except _DRIVER_ERRORS as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @asynccontextmanager
    async def _connection(self, *, transaction: bool = False, write: bool = True) -> AsyncIterator[Conn]:
        """A pooled connection (in a transaction if asked), waited for at most pool_timeout_s."""
        if self._pool is None:
            raise StoreError("the PostgreSQL database is not open")
        try:
            async with self._pool.acquire(timeout=self._pool_timeout_s) as conn:
                if not transaction:
                    yield _Statements(conn)
                    return
                async with conn.transaction(readonly=not write):
                    yield _Statements(conn)
        # Only failures of acquire, release, BEGIN, COMMIT or ROLLBACK get here as driver
        # errors: statements inside were translated by _Statements already.
        except _DRIVER_ERRORS as exc:
            raise _translate(exc) from exc

    async def ping(self) -> None:
        try:
            await asyncio.wait_for(self.fetchone("SELECT 1 AS ok"), _PING_TIMEOUT_S)
        except TimeoutError as exc:
            raise StoreError(f"PostgreSQL did not answer within {_PING_TIMEOUT_S:g} s") from exc

    async def execute(self, sql: str, *args: Any) -> None:
        async with self._connection() as conn:
            await conn.execute(sql, *args)

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        async with self._connection() as conn:
            return await conn.fetchone(sql, *args)

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        async with self._connection() as conn:
            return await conn.fetchall(sql, *args)

    def transaction(self, *, write: bool) -> AbstractAsyncContextManager[Conn]:
        return self._connection(transaction=True, write=write)

    async def insert_many(
        self, table: str, columns: Sequence[str], rows: Sequence[Row], tail: str
    ) -> list[Row]:
        # One statement whatever the count (one prepared plan), the rows as one JSON
        # array that PostgreSQL turns into the table's own row type, column by name.
        names = ", ".join(columns)
        try:
            encoded = orjson.dumps(rows).decode()
        except orjson.JSONEncodeError as exc:  # a lone surrogate in some text
            raise InvalidValue(f"a row cannot be encoded: {exc}") from exc
        return await self.fetchall(
            f"INSERT INTO {table} ({names}) SELECT {names}"
            f" FROM jsonb_populate_recordset(NULL::{table}, $1::jsonb) {tail}",
            encoded,
        )
