"""Flash-sale stock: reserve, commit, release — each exactly once, whatever is retried.

A sale has a fixed `quantity`; every unit is at any moment in exactly one of
`remaining`, `held` (reserved by an unpaid order, with an expiry) or `sold`, so
`remaining + held + sold == quantity` always, and `remaining` never goes below
zero. A hold is named by the caller (the order id), which makes every step
idempotent: reserving the same hold twice returns the first answer, committing
or releasing twice changes nothing the second time.

Implementations: `MemoryStock` here (the embedded default) and
`stock_redis.RedisStock`, where each step is one Lua script.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Protocol

from core.errors import Conflict, NotFound

FORGET_AFTER_S = 24 * 3600  # how long the in-process stock remembers a settled hold


class SoldOut(Conflict):
    code = "sold_out"


class LimitReached(Conflict):
    code = "limit_reached"


class HoldLimitReached(Conflict):
    """The viewer already holds as many unpaid units as one viewer may (`max_held_units`)."""

    code = "hold_limit_reached"


class SaleEnded(Conflict):
    code = "sale_ended"


class UnknownSale(NotFound):
    code = "sale_not_found"


class HoldState(enum.StrEnum):
    HELD = "held"
    SOLD = "sold"
    RELEASED = "released"  # given back: canceled, failed or expired


@dataclass(frozen=True, slots=True)
class Hold:
    hold_id: str
    sale_id: str
    viewer_id: str
    quantity: int
    state: HoldState
    expires_at: float


@dataclass(frozen=True, slots=True)
class Counts:
    quantity: int
    remaining: int
    held: int
    sold: int


class Stock(Protocol):
    async def open_sale(self, sale_id: str, *, quantity: int, per_viewer_limit: int, ends_at: float) -> None:
        """Make a sale's units available (idempotent: opening it again changes nothing)."""

    async def end_sale(self, sale_id: str, at: float) -> None:
        """No more reservations after `at`; holds already taken may still commit."""

    async def reserve(
        self, sale_id: str, hold_id: str, viewer_id: str, quantity: int, ttl: float, max_held: int
    ) -> Hold:
        """Take `quantity` units for `viewer_id` until now + ttl, if the viewer then holds no more
        than `max_held` unpaid units of the sale. Raises SoldOut, LimitReached, HoldLimitReached,
        SaleEnded or UnknownSale; the same hold_id again returns the hold."""

    async def commit(self, sale_id: str, hold_id: str) -> Hold | None:
        """Held → sold. Returns the hold as it now is (RELEASED if it was lost, e.g.
        expired: the caller must then not take the money). None: no such hold."""

    async def release(self, sale_id: str, hold_id: str) -> Hold | None:
        """Held → released, units back to remaining. Sold and released holds stay as they are."""

    async def expire(self, now: float | None = None, limit: int = 1000) -> list[Hold]:
        """Release holds whose time has passed, in every sale; returns those released now."""

    async def counts(self, sale_id: str) -> Counts: ...

    async def get_hold(self, sale_id: str, hold_id: str) -> Hold | None: ...

    async def close(self) -> None: ...


@dataclass
class _Sale:
    quantity: int
    remaining: int
    held: int
    sold: int
    per_viewer_limit: int
    ends_at: float
    taken: dict[str, int]  # viewer → units held or sold
    held_by: dict[str, int]  # viewer → units held unpaid


class MemoryStock:
    """All steps run without an await inside, so each is atomic on the event loop."""

    def __init__(self) -> None:
        self._sales: dict[str, _Sale] = {}
        self._holds: dict[str, Hold] = {}

    async def open_sale(self, sale_id: str, *, quantity: int, per_viewer_limit: int, ends_at: float) -> None:
        if sale_id not in self._sales:
            self._sales[sale_id] = _Sale(quantity, quantity, 0, 0, per_viewer_limit, ends_at, {}, {})

    async def end_sale(self, sale_id: str, at: float) -> None:
        sale = self._sales.get(sale_id)
        if sale is not None:
            sale.ends_at = min(sale.ends_at, at)

    async def reserve(
        self, sale_id: str, hold_id: str, viewer_id: str, quantity: int, ttl: float, max_held: int
    ) -> Hold:
        existing = self._holds.get(hold_id)
        if existing is not None:
            return existing
        sale = self._sales.get(sale_id)
        if sale is None:
            raise UnknownSale(f"no sale {sale_id!r}")
        now = time.time()
        if now >= sale.ends_at:
            raise SaleEnded("the sale is over")
        if sale.taken.get(viewer_id, 0) + quantity > sale.per_viewer_limit:
            raise LimitReached(f"at most {sale.per_viewer_limit} per viewer in this sale")
        if sale.held_by.get(viewer_id, 0) + quantity > max_held:
            raise HoldLimitReached(f"at most {max_held} unpaid units at a time; pay for those first")
        if sale.remaining < quantity:
            raise SoldOut("sold out" if sale.remaining == 0 else f"only {sale.remaining} left")
        sale.remaining -= quantity
        sale.held += quantity
        sale.taken[viewer_id] = sale.taken.get(viewer_id, 0) + quantity
        sale.held_by[viewer_id] = sale.held_by.get(viewer_id, 0) + quantity
        hold = Hold(hold_id, sale_id, viewer_id, quantity, HoldState.HELD, now + ttl)
        self._holds[hold_id] = hold
        return hold

    def _move(self, hold_id: str, to: HoldState, sale_id: str | None = None) -> Hold | None:
        hold = self._holds.get(hold_id)
        if hold is None or (sale_id is not None and hold.sale_id != sale_id):
            return None
        if hold.state is not HoldState.HELD:
            return hold
        sale = self._sales[hold.sale_id]
        sale.held -= hold.quantity
        sale.held_by[hold.viewer_id] -= hold.quantity
        if to is HoldState.SOLD:
            sale.sold += hold.quantity
        else:
            sale.remaining += hold.quantity
            sale.taken[hold.viewer_id] -= hold.quantity
        moved = Hold(hold.hold_id, hold.sale_id, hold.viewer_id, hold.quantity, to, hold.expires_at)
        self._holds[hold_id] = moved
        return moved

    async def commit(self, sale_id: str, hold_id: str) -> Hold | None:
        hold = self._holds.get(hold_id)
        if hold is not None and hold.state is HoldState.HELD and hold.expires_at <= time.time():
            return self._move(hold_id, HoldState.RELEASED, sale_id)  # too late: the hold was lost
        return self._move(hold_id, HoldState.SOLD, sale_id)

    async def release(self, sale_id: str, hold_id: str) -> Hold | None:
        return self._move(hold_id, HoldState.RELEASED, sale_id)

    async def expire(self, now: float | None = None, limit: int = 1000) -> list[Hold]:
        now = time.time() if now is None else now
        holds = self._holds.values()
        due = [h.hold_id for h in holds if h.state is HoldState.HELD and h.expires_at <= now][:limit]
        released = [h for h in (self._move(hold_id, HoldState.RELEASED) for hold_id in due) if h]
        # Settled holds only answer retries; a day after they would have expired, none come.
        for hold_id in [
            h.hold_id for h in holds if h.state is not HoldState.HELD and h.expires_at + FORGET_AFTER_S < now
        ]:
            del self._holds[hold_id]
        return released

    async def counts(self, sale_id: str) -> Counts:
        sale = self._sales.get(sale_id)
        if sale is None:
            raise UnknownSale(f"no sale {sale_id!r}")
        return Counts(sale.quantity, sale.remaining, sale.held, sale.sold)

    async def get_hold(self, sale_id: str, hold_id: str) -> Hold | None:
        hold = self._holds.get(hold_id)
        return hold if hold is not None and hold.sale_id == sale_id else None

    async def close(self) -> None:
        return None
