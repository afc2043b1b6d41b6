"""livecart's database: every package's tables in one numbered sequence of migrations.

The packages that own tables keep them in their `schema` folders; this is the one place that
knows them all, so `livecart migrate`, `livecart serve` and the tests open the same schema.
"""

from __future__ import annotations

from core.db import migrations
from core.db.connect import driver_for_url
from core.db.driver import Driver

SCHEMA_PACKAGES = ("core.schema", "streaming.schema", "checkout.schema")
MIGRATIONS = migrations.collect(*SCHEMA_PACKAGES)
HEAD = MIGRATIONS[-1].version


async def migrate(db: Driver, target: int | None = None) -> int:
    """Bring the schema forward to target (default: newest); return the version."""
    return await migrations.apply(db, MIGRATIONS, target)


async def schema_version(db: Driver) -> int:
    return await migrations.current_version(db)


async def open_database(
    url: str, *, statement_timeout_s: float | None = None, pool_timeout_s: float | None = None
) -> Driver:
    """Connect to the database at url, migrate it to the newest schema, and return a driver
    whose statements and pool waits are bounded by the timeouts given.

    The migrations run on a connection of their own without those bounds (building an index
    may take minutes). Raises ValueError for an unknown scheme or malformed URL and StoreError
    when the database cannot be reached or its schema is newer than this code.
    """
    bounded = statement_timeout_s is not None or pool_timeout_s is not None
    db = driver_for_url(url)
    await db.connect()
    try:
        await migrate(db)
        if bounded:
            await db.close()
            db = driver_for_url(url, statement_timeout_s=statement_timeout_s, pool_timeout_s=pool_timeout_s)
            await db.connect()
    except BaseException:
        await db.close()
        raise
    return db
