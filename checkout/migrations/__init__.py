"""Versioned schema migrations shared by the SQLite and PostgreSQL stores.

Each `NNNN_name.sql` file in this package is one migration; its number is the
schema version the database has once it is applied. The files are portable
SQL. A database records the versions it has in `schema_migrations`.

`apply()` moves a database forward one migration per transaction, the
migration and its `schema_migrations` row committing together, so a crash
leaves the database at some whole version. Each of those transactions first
takes a lock (the driver's `Dialect.migration_lock`; on SQLite `BEGIN
IMMEDIATE` already is one) and re-reads the version under it, so two
processes starting at once apply every migration exactly once between them.
Migrations only go forward: there is no downgrade.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from checkout.store import StoreError

if TYPE_CHECKING:
    from checkout.store_sql import Conn, Driver

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_BOOKKEEPING = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER NOT NULL PRIMARY KEY,"
    " applied_at DOUBLE PRECISION NOT NULL)"
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(sql: str) -> tuple[str, ...]:
    """The statements of a migration file: `--` comment lines dropped, split on ';'.

    Deliberately naive: migration files keep ';' out of literals and bodies.
    """
    kept = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return tuple(part.strip() for part in "\n".join(kept).split(";") if part.strip())


def load() -> tuple[Migration, ...]:
    found: list[Migration] = []
    for entry in resources.files(__name__).iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is not None:
            statements = split_statements(entry.read_text(encoding="utf-8"))
            found.append(Migration(int(match[1]), match[2], statements))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    # A gap or a duplicate number would make "apply the next one" ambiguous.
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration versions must be 1..N without gaps, found {versions}")
    return tuple(found)


MIGRATIONS = load()
HEAD = MIGRATIONS[-1].version


async def current_version(conn: Conn) -> int:
    row = await conn.fetchone("SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations")
    return 0 if row is None else int(row["version"])


async def apply(driver: Driver, target: int | None = None) -> int:
    """Migrate forward to target (default: the newest); return the version reached.

    A database already at or past target is left alone (no downgrades); one
    newer than this code knows raises StoreError.
    """
    goal = HEAD if target is None else target
    if not 0 <= goal <= HEAD:
        raise ValueError(f"no schema version {goal}: this livecart knows 0 to {HEAD}")
    # One pass per migration, plus the pass that finds nothing left to do.
    for _ in range(HEAD + 1):
        async with driver.transaction(write=True) as conn:
            if driver.dialect.migration_lock:
                await conn.execute(driver.dialect.migration_lock)
            await conn.execute(_BOOKKEEPING)
            version = await current_version(conn)
            if version > HEAD:
                raise StoreError(f"database schema version {version} is newer than this livecart ({HEAD})")
            if version >= goal:
                return version
            step = MIGRATIONS[version]  # versions are 1..N, so this is version + 1
            for statement in step.statements:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                step.version,
                time.time(),
            )
    raise AssertionError("migrations did not converge")  # each pass applies one or returns
