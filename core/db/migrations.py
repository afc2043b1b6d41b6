"""Versioned schema migrations, gathered from every package that owns tables.

Each package keeps its tables in a `schema` folder of `NNNN_name.sql` files (core: accounts;
streaming: streams; checkout: products, sales, orders). The numbers form ONE sequence across
all of them, 1..N without gaps or repeats, because tables refer to each other (an order names
its stream); `collect()` merges the folders and checks that. A migration's number is the
schema version a database has once it is applied; a database records its versions in
`schema_migrations`. The files are portable SQL.

`apply()` moves a database forward one migration per transaction, the migration and its
`schema_migrations` row committing together, so a crash leaves the database at some whole
version. Each of those transactions first takes a lock (the driver's
`Dialect.migration_lock`; on SQLite `BEGIN IMMEDIATE` already is one) and re-reads the
version under it, so two processes starting at once apply every migration exactly once
between them. Migrations only go forward: there is no downgrade.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from core.db.driver import Conn, Driver, StoreError

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
    package: str  # the schema folder it comes from, e.g. "checkout.schema"
    statements: tuple[str, ...]


def split_statements(sql: str) -> tuple[str, ...]:
    """The statements of a migration file: `--` comment lines dropped, split on ';'.

    Deliberately naive: migration files keep ';' out of literals and bodies.
    """
    kept = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return tuple(part.strip() for part in "\n".join(kept).split(";") if part.strip())


def collect(*packages: str) -> tuple[Migration, ...]:
    """Every migration file of the given packages' schema folders, in version order."""
    found: list[Migration] = []
    for package in packages:
        for entry in resources.files(package).iterdir():
            match = _FILE_NAME.match(entry.name)
            if match is not None:
                statements = split_statements(entry.read_text(encoding="utf-8"))
                found.append(Migration(int(match[1]), match[2], package, statements))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    # A gap or a duplicate number would make "apply the next one" ambiguous.
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration versions must be 1..N without gaps, found {versions}")
    return tuple(found)


async def current_version(conn: Conn) -> int:
    row = await conn.fetchone("SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations")
    return 0 if row is None else int(row["version"])


async def apply(driver: Driver, migrations: Sequence[Migration], target: int | None = None) -> int:
    """Migrate forward to target (default: the newest); return the version reached.

    A database already at or past target is left alone (no downgrades); one
    newer than this code knows raises StoreError.
    """
    head = len(migrations)
    goal = head if target is None else target
    if not 0 <= goal <= head:
        raise ValueError(f"no schema version {goal}: this livecart knows 0 to {head}")
    # One pass per migration, plus the pass that finds nothing left to do.
    for _ in range(head + 1):
        async with driver.transaction(write=True) as conn:
            if driver.dialect.migration_lock:
                await conn.execute(driver.dialect.migration_lock)
            await conn.execute(_BOOKKEEPING)
            version = await current_version(conn)
            if version > head:
                raise StoreError(f"database schema version {version} is newer than this livecart ({head})")
            if version >= goal:
                return version
            step = migrations[version]  # versions are 1..N, so this is version + 1
            for statement in step.statements:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                step.version,
                time.time(),
            )
    raise AssertionError("migrations did not converge")  # each pass applies one or returns
