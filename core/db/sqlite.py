"""SQLite driver: the embedded default, one file in the data dir.

One aiosqlite connection per process (aiosqlite runs it on its own thread) and
an asyncio.Lock so that two coroutines' transactions never interleave on it.
Several processes on one machine may share the file: WAL lets readers run
beside one writer, busy_timeout makes a second writer wait instead of failing,
and every write transaction starts with BEGIN IMMEDIATE, taking the write lock
up front. (A deferred transaction that reads and then writes can find another
process committed in between and fail at once with SQLITE_BUSY, no waiting.)
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from core.db.driver import Conn, ConstraintKind, ConstraintViolation, Dialect, InvalidValue, Row, StoreError

# CAST truncates, which is the floor for the non-negative numbers it is given (SQLite's
# FLOOR() exists only when built with its math functions).
_DIALECT = Dialect(name="sqlite", row_lock="", migration_lock="", floor="CAST({} AS INTEGER)")
_PLACEHOLDER = re.compile(r"\$(\d+)")
_MEMORY = ":memory:"

_CONSTRAINT_KINDS: dict[int, ConstraintKind] = {
    sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY: "foreign_key",
    sqlite3.SQLITE_CONSTRAINT_UNIQUE: "unique",
    sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY: "unique",
    sqlite3.SQLITE_CONSTRAINT_CHECK: "check",
    sqlite3.SQLITE_CONSTRAINT_NOTNULL: "not_null",
}


def sqlite_path(url: str) -> str:
    """`sqlite:///relative/x.db` → `relative/x.db`; `sqlite:////abs/x.db` → `/abs/x.db`."""
    prefix = "sqlite:///"
    if not url.lower().startswith(prefix):
        raise ValueError("a SQLite URL looks like sqlite:///relative/path.db or sqlite:////abs/path")
    path = url[len(prefix) :].partition("?")[0]
    if not path:
        raise ValueError("the SQLite URL names no file")
    return path


def _placeholders(count: int) -> str:
    return ", ".join(f"${n}" for n in range(1, count + 1))


def _numbered(sql: str) -> str:
    # sqlite3 binds `?NNN` by position just as PostgreSQL binds `$NNN`.
    return _PLACEHOLDER.sub(r"?\1", sql)


class _Statements:
    """Runs statements on one aiosqlite connection, translating its errors."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> None:
        await self.fetchall(sql, *args)

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetchall(sql, *args)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        try:
            rows = await self._conn.execute_fetchall(_numbered(sql), args)
        except sqlite3.IntegrityError as exc:
            kind = _CONSTRAINT_KINDS.get(exc.sqlite_errorcode, "other")
            raise ConstraintViolation(kind, str(exc)) from exc
        except UnicodeError as exc:  # a lone surrogate cannot be bound as UTF-8 text
            raise InvalidValue(f"SQLite cannot store this value: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite: {exc}") from exc
        return [dict(row) for row in rows]


class SqliteDriver:
    """The driver on a SQLite file named by a `sqlite:///path` URL."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 5000) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    @property
    def dialect(self) -> Dialect:
        return _DIALECT

    async def connect(self) -> None:
        if self._conn is not None:
            return
        try:
            if self.path != _MEMORY:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = await aiosqlite.connect(
                self.path, isolation_level=None, timeout=self._busy_timeout_ms / 1000
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from exc
        try:
            conn.row_factory = sqlite3.Row
            statements = _Statements(conn)
            await statements.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            await statements.execute("PRAGMA foreign_keys = ON")
            mode = await self._enter_wal(statements)
            if self.path != _MEMORY and (mode is None or mode["journal_mode"] != "wal"):
                raise StoreError(f"SQLite database {self.path} cannot use WAL journal mode")
            # Safe with WAL (a crash may lose the last commits, never corrupt)
            # and spares an fsync per commit.
            await statements.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

    async def _enter_wal(self, statements: _Statements) -> Row | None:
        # Switching to WAL needs the file to itself for a moment, and SQLite
        # answers "database is locked" at once, without its busy handler, when
        # another process is opening the same new file. Retry within the busy
        # timeout, as a second writer would wait.
        deadline = asyncio.get_running_loop().time() + self._busy_timeout_ms / 1000
        delay = 0.005
        while True:
            try:
                return await statements.fetchone("PRAGMA journal_mode = WAL")
            except StoreError as exc:
                cause = exc.__cause__
                busy = isinstance(cause, sqlite3.OperationalError) and (
                    cause.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
                )
                if not busy or asyncio.get_running_loop().time() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def close(self) -> None:
        async with self._lock:  # let a running transaction finish first
            conn, self._conn = self._conn, None
            if conn is not None:
                await conn.close()

    async def ping(self) -> None:
        await self.fetchone("SELECT 1 AS ok")

    def _statements(self) -> _Statements:
        if self._conn is None:
            raise StoreError("the SQLite database is not open")
        return _Statements(self._conn)

    async def execute(self, sql: str, *args: Any) -> None:
        async with self._lock:
            await self._statements().execute(sql, *args)

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        async with self._lock:
            return await self._statements().fetchone(sql, *args)

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        async with self._lock:
            return await self._statements().fetchall(sql, *args)

    async def insert_many(
        self, table: str, columns: Sequence[str], rows: Sequence[Row], tail: str
    ) -> list[Row]:
        # Row by row in one transaction: one commit for all, and values bound as they
        # are (SQLite's JSON functions do not read every float back exactly).
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({_placeholders(len(columns))}) {tail}"
        returned: list[Row] = []
        async with self.transaction(write=True) as conn:
            for row in rows:
                returned += await conn.fetchall(sql, *(row[column] for column in columns))
        return returned

    @asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[Conn]:
        async with self._lock:
            statements = self._statements()
            await statements.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield statements
                await statements.execute("COMMIT")
            except BaseException:
                # Shielded so that a cancelled caller still leaves the connection
                # outside any transaction; aiosqlite runs requests in order, so
                # the ROLLBACK is queued before the next holder's BEGIN. A failing
                # ROLLBACK (SQLite may have rolled back already) must not hide
                # the error that got us here.
                with contextlib.suppress(StoreError):
                    await asyncio.shield(statements.execute("ROLLBACK"))
                raise
