"""Checkout's records: products, sales, orders, and the one table of order state changes.

Records are frozen dataclasses so that nothing outside the stores can change a row behind
their back; changes go through the stores' methods, each of which is one transaction.

An order moves only along `TRANSITIONS`; every move is a compare-and-set in the
store (`UPDATE … WHERE status = <from>`), so doing it twice changes nothing the
second time and two nodes racing on one order agree on one winner. A pending order
whose money is held is claimed by settlement (`authorized_at`); from then on only
settlement moves it (to paid, or to expired when its units were lost).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    brand_id: str
    title: str
    price: int  # minor units
    currency: str  # ISO-4217, upper case
    stock: int
    image_url: str | None
    description: str | None
    created_at: float
    updated_at: float
    min_price: int = 0  # the lowest price a sale may ask, minor units (0: no floor)


# Fields of a product that PATCH may change.
PRODUCT_MUTABLE_FIELDS = frozenset(
    {"title", "price", "currency", "stock", "image_url", "description", "min_price"}
)


@dataclass(frozen=True, slots=True)
class Grant:
    """A brand's consent that a host may feature its products (lineup, pin, sale)."""

    brand_id: str
    host_id: str
    max_units: int | None  # the most units one sale may offer; None: no cap
    created_at: float


class OrderStatus(enum.StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELED = "canceled"
    REFUNDED = "refunded"


TRANSITIONS: frozenset[tuple[OrderStatus, OrderStatus]] = frozenset(
    {
        (OrderStatus.PENDING_PAYMENT, OrderStatus.PAID),
        (OrderStatus.PENDING_PAYMENT, OrderStatus.FAILED),
        (OrderStatus.PENDING_PAYMENT, OrderStatus.EXPIRED),
        (OrderStatus.PENDING_PAYMENT, OrderStatus.CANCELED),
        (OrderStatus.PAID, OrderStatus.REFUNDED),
    }
)

# States whose units are back in stock (or never left it).
STOCK_RETURNED = frozenset({OrderStatus.FAILED, OrderStatus.EXPIRED, OrderStatus.CANCELED})
FINAL = frozenset({OrderStatus.FAILED, OrderStatus.EXPIRED, OrderStatus.CANCELED, OrderStatus.REFUNDED})


def allowed(current: OrderStatus, wanted: OrderStatus) -> bool:
    return current == wanted or (current, wanted) in TRANSITIONS


@dataclass(frozen=True, slots=True)
class Sale:
    id: str
    stream_id: str
    product_id: str
    price: int
    currency: str
    quantity: int
    per_viewer_limit: int
    starts_at: float
    ends_at: float
    ended_at: float | None
    returned: int
    settled_at: float | None  # set once every unit is sold or back in the product's stock
    created_at: float

    @property
    def closes_at(self) -> float:
        """When no more reservations are taken: the countdown's end, or earlier if ended."""
        return self.ends_at if self.ended_at is None else min(self.ends_at, self.ended_at)


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    viewer_id: str
    stream_id: str
    product_id: str
    sale_id: str | None
    quantity: int
    unit_price: int
    amount: int
    currency: str
    status: OrderStatus
    idempotency_key: str
    request_hash: str
    provider: str
    intent_id: str | None
    client_secret: str | None
    created_at: float
    updated_at: float
    expires_at: float
    paid_at: float | None
    # Set when settlement claims the order because its money is held (see settlement.py).
    authorized_at: float | None = None
    channel: str = "live"  # LIVE, or REPLAY: bought from the replay once the show was over


LIVE, REPLAY = "live", "replay"


# -- what paid orders add up to (brand monitoring reads these) -------------------------
@dataclass(frozen=True, slots=True)
class ProductSales:
    product_id: str
    currency: str
    orders: int
    units: int
    gmv: int  # in the currency's minor unit, as prices are


@dataclass(frozen=True, slots=True)
class MinuteSales:
    t: float  # the minute's start, Unix seconds
    currency: str
    orders: int
    gmv: int


@dataclass(frozen=True, slots=True)
class StreamSales:
    """Paid orders of one stream, added up; a refund takes its order back out. Kept with each
    order's move to paid or refunded, in the same transaction, so they never drift from the orders."""

    stream_id: str
    orders: int
    units: int
    buyers: int  # distinct viewers with a paid order
    products: tuple[ProductSales, ...]
    timeline: tuple[MinuteSales, ...]  # per minute of payment, oldest first (none for a replay's)
