"""The `brand_hosts` table: which hosts each brand lets feature its products."""

from __future__ import annotations

import time
from collections.abc import Sequence

from checkout.records import Grant
from core.accounts import UnknownAccount
from core.db.driver import ConstraintViolation, Driver, Row, chunks, placeholders

_COLUMNS = "brand_id, host_id, max_units, created_at"


def _grant(row: Row) -> Grant:
    max_units = row["max_units"]
    return Grant(
        brand_id=row["brand_id"],
        host_id=row["host_id"],
        max_units=None if max_units is None else int(max_units),
        created_at=float(row["created_at"]),
    )


class GrantStore:
    """Every method is one transaction."""

    def __init__(self, db: Driver) -> None:
        self._db = db

    async def put(self, brand_id: str, host_id: str, max_units: int | None) -> tuple[Grant, bool]:
        """Grant (or change the grant's cap); answers the grant and whether it is new."""
        try:
            async with self._db.transaction(write=True) as conn:
                row = await conn.fetchone(
                    f"INSERT INTO brand_hosts ({_COLUMNS}) VALUES ($1, $2, $3, $4)"
                    " ON CONFLICT (brand_id, host_id) DO NOTHING RETURNING " + _COLUMNS,
                    brand_id,
                    host_id,
                    max_units,
                    time.time(),
                )
                if row is not None:
                    return _grant(row), True
                row = await conn.fetchone(
                    "UPDATE brand_hosts SET max_units = $3 WHERE brand_id = $1 AND host_id = $2"
                    " RETURNING " + _COLUMNS,
                    brand_id,
                    host_id,
                    max_units,
                )
        except ConstraintViolation as exc:
            if exc.kind == "foreign_key":
                raise UnknownAccount(host_id) from exc
            raise
        assert row is not None  # the row the insert ran into
        return _grant(row), False

    async def delete(self, brand_id: str, host_id: str) -> bool:
        async with self._db.transaction(write=True) as conn:
            row = await conn.fetchone(
                "DELETE FROM brand_hosts WHERE brand_id = $1 AND host_id = $2 RETURNING brand_id",
                brand_id,
                host_id,
            )
        return row is not None

    async def of_brand(self, brand_id: str) -> list[Grant]:
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM brand_hosts WHERE brand_id = $1 ORDER BY created_at", brand_id
        )
        return [_grant(row) for row in rows]

    async def for_host(self, host_id: str, brand_ids: Sequence[str]) -> dict[str, Grant]:
        """The grants `host_id` holds from any of `brand_ids`, by brand."""
        wanted = list(dict.fromkeys(brand_ids))
        found: dict[str, Grant] = {}
        async with self._db.transaction(write=False) as conn:
            for chunk in chunks(wanted):
                rows = await conn.fetchall(
                    f"SELECT {_COLUMNS} FROM brand_hosts WHERE host_id = $1"
                    f" AND brand_id IN ({placeholders(2, len(chunk))})",
                    host_id,
                    *chunk,
                )
                found.update((row["brand_id"], _grant(row)) for row in rows)
        return found
