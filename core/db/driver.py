"""The driver protocol: statements with `$n` placeholders, transactions, and two kinds of error.

Every query livecart runs is written once, in PostgreSQL's `$1` placeholder style (the
SQLite driver rewrites them to `?1`). What the two databases spell differently lives in
`Dialect`, which is kept to a row-lock clause, the migration lock and a floor function.

Drivers translate their errors into three kinds: `ConstraintViolation` (the database refused
a row; the owning store turns it into UnknownProduct and friends), `InvalidValue` (a value the
database cannot hold, e.g. a NUL in text on PostgreSQL: the caller's to fix, 422) and
`StoreError` (the database is unwell: the HTTP edge answers 503 `database_unavailable`).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Row = dict[str, Any]

# Both databases accept far more bound parameters than this; chunking keeps
# one `IN (...)` list well inside SQLite's limit whatever a caller passes.
IN_CHUNK = 500


class StoreError(Exception):
    """A database failure that is not the caller's fault (connection lost, schema too new)."""


class InvalidValue(ValueError):
    """A value the database cannot store as given (a NUL or a lone surrogate in text)."""


ConstraintKind = Literal["foreign_key", "unique", "check", "not_null", "other"]


class ConstraintViolation(ValueError):
    """The database refused a row. A ValueError: bad input is the caller's to fix."""

    def __init__(self, kind: ConstraintKind, detail: str) -> None:
        super().__init__(f"{kind.replace('_', ' ')} constraint violated: {detail}")
        self.kind = kind


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

    url: str

    @property
    def dialect(self) -> Dialect: ...

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise StoreError when the database does not answer."""

    def transaction(self, *, write: bool) -> AbstractAsyncContextManager[Conn]: ...

    async def insert_many(
        self, table: str, columns: Sequence[str], rows: Sequence[Row], tail: str
    ) -> list[Row]:
        """INSERT the rows (dicts by column) as one unit of work, `tail` (ON CONFLICT …,
        RETURNING …) applying to each; answers what RETURNING returned, in no set order."""
        ...


def placeholders(first: int, count: int) -> str:
    """`$first, …` for `count` values."""
    return ", ".join(f"${n}" for n in range(first, first + count))


def chunks(values: Sequence[str]) -> list[Sequence[str]]:
    """`values` in slices that fit one `IN (...)` list."""
    return [values[i : i + IN_CHUNK] for i in range(0, len(values), IN_CHUNK)]


def optional_float(value: Any) -> float | None:
    """A nullable timestamp column (which may hand back an int for a row written by hand)."""
    return None if value is None else float(value)
