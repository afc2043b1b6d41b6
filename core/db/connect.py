"""Which driver a database URL names."""

from __future__ import annotations

from core.db.driver import Driver


def driver_for_url(
    url: str, *, statement_timeout_s: float | None = None, pool_timeout_s: float | None = None
) -> Driver:
    """An unconnected driver for a database URL; the timeouts bound a PostgreSQL statement and
    the wait for a pooled connection (SQLite has its busy timeout).

    `sqlite:///relative/path.db` or `sqlite:////absolute/path.db` → SQLite (parent
    directory created on connect). `postgresql://…` or `postgres://…` → PostgreSQL; a
    `search_path=SCHEMA` query parameter keeps livecart's tables in that (existing) schema.
    Any other scheme → ValueError naming it.
    """
    scheme = url.partition(":")[0].lower() if "://" in url else ""
    # Imported here so that a SQLite install never imports asyncpg and vice versa.
    if scheme == "sqlite":
        from core.db.sqlite import SqliteDriver

        return SqliteDriver(url)
    if scheme in ("postgresql", "postgres"):
        from core.db.postgres import PostgresDriver

        return PostgresDriver(url, statement_timeout_s=statement_timeout_s, pool_timeout_s=pool_timeout_s)
    raise ValueError(f"unknown database URL scheme {scheme!r}: use sqlite:///path or postgresql://…")
