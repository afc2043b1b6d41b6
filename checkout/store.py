"""The store: one protocol for everything livecart keeps in its database.

Accounts (admin, hosts, brands, viewers), the catalog and streams live here;
orders join them when checkout lands. Two implementations share this protocol
and one test suite: SQLite (the embedded default, a file in the data dir) and
PostgreSQL. `open_store(url)` picks one from the database URL.

Records are frozen dataclasses so that nothing outside the store can change
a row behind its back; updates go through the store's methods, each of which
is one transaction.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from checkout.orders import Order, OrderStatus, Sale, StreamSales
    from checkout.store_sql import SqlStore


class Role(enum.StrEnum):
    ADMIN = "admin"
    HOST = "host"
    BRAND = "brand"
    VIEWER = "viewer"


class StreamState(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    role: Role
    name: str
    created_at: float


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


@dataclass(frozen=True, slots=True)
class Stream:
    id: str
    host_id: str
    title: str
    state: StreamState
    product_ids: tuple[str, ...]  # in the order the host listed them
    pinned_product_id: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None


# Every move set_stream_state accepts besides repeating the current state.
STREAM_TRANSITIONS = frozenset(
    {
        (StreamState.SCHEDULED, StreamState.LIVE),
        (StreamState.SCHEDULED, StreamState.ENDED),
        (StreamState.LIVE, StreamState.ENDED),
    }
)

# Fields of a product that PATCH may change.
PRODUCT_MUTABLE_FIELDS = frozenset({"title", "price", "currency", "stock", "image_url", "description"})


class StoreError(Exception):
    """A store failure that is not the caller's fault (connection lost, schema too new)."""


ConstraintKind = Literal["foreign_key", "unique", "check", "not_null", "other"]


class ConstraintViolation(ValueError):
    """The database refused a row. A ValueError: bad input is the caller's to fix."""

    def __init__(self, kind: ConstraintKind, detail: str) -> None:
        super().__init__(f"{kind.replace('_', ' ')} constraint violated: {detail}")
        self.kind = kind


class Store(Protocol):
    """What livecart needs from its database. Every method is one transaction."""

    url: str

    async def open(self) -> None:
        """Connect and bring the schema up to the newest version in place."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise StoreError when the database does not answer."""

    async def schema_version(self) -> int: ...

    # -- key/value metadata (e.g. the generated admin token's hash) ------------
    async def get_meta(self, key: str) -> str | None: ...

    async def set_meta_if_absent(self, key: str, value: str) -> str:
        """Store value under key unless one is there; return the value now stored."""

    # -- accounts ---------------------------------------------------------------
    async def create_account(self, role: Role, name: str, token_hash: str) -> Account: ...

    async def get_account(self, account_id: str) -> Account | None: ...

    async def account_by_token_hash(self, token_hash: str) -> Account | None: ...

    # -- catalog ----------------------------------------------------------------
    async def create_product(
        self,
        *,
        brand_id: str,
        title: str,
        price: int,
        currency: str,
        stock: int,
        image_url: str | None,
        description: str | None,
    ) -> Product: ...

    async def get_product(self, product_id: str) -> Product | None: ...

    async def get_products(self, product_ids: Sequence[str]) -> list[Product]:
        """The products that exist among product_ids, in the order asked."""

    async def update_product(self, product_id: str, changes: Mapping[str, Any]) -> Product | None:
        """Apply changes (keys from PRODUCT_MUTABLE_FIELDS); None if no such product."""

    # -- streams ----------------------------------------------------------------
    async def create_stream(self, *, host_id: str, title: str, product_ids: Sequence[str]) -> Stream: ...

    async def get_stream(self, stream_id: str) -> Stream | None: ...

    async def list_streams(self, limit: int = 100) -> list[Stream]:
        """Live first (newest started first), then scheduled, then ended (newest first)."""

    async def set_stream_state(self, stream_id: str, state: StreamState, at: float) -> Stream | None:
        """Move a stream to `state` (stamping started_at/ended_at with `at` the
        first time). Allowed: scheduled→live, scheduled→ended, live→ended, and
        the same state again (idempotent, changes nothing). Any other move
        raises InvalidTransition. None if no such stream."""

    async def set_pinned(self, stream_id: str, product_id: str | None) -> Stream | None: ...

    # -- sales and orders (checkout/store_orders.py) -----------------------------
    async def create_sale(
        self,
        *,
        stream_id: str,
        product_id: str,
        price: int,
        currency: str,
        quantity: int,
        per_viewer_limit: int,
        duration_s: float,
    ) -> Sale: ...

    async def get_sale(self, sale_id: str) -> Sale | None: ...

    async def current_sale(self, stream_id: str, now: float) -> Sale | None: ...

    async def end_sale(self, sale_id: str, at: float) -> tuple[Sale, bool] | None: ...

    async def sales_to_settle(self, now: float, limit: int = 100) -> list[Sale]: ...

    async def return_sale_stock(self, sale_id: str, unsold: int, *, settled: bool) -> int: ...

    async def create_order(self, order: Order, *, take_product_stock: bool) -> Order: ...

    async def get_order(self, order_id: str) -> Order | None: ...

    async def order_by_key(self, viewer_id: str, key: str) -> Order | None: ...

    async def order_by_intent(self, intent_id: str) -> Order | None: ...

    async def set_payment(self, order_id: str, intent_id: str, client_secret: str | None) -> Order | None: ...

    async def transition(self, order_id: str, to: OrderStatus) -> tuple[Order, bool] | None: ...

    async def pending_orders(self, *, expired_by: float | None = None, limit: int = 500) -> list[Order]: ...

    async def record_webhook_event(self, event_id: str, event_type: str) -> bool: ...

    async def stream_sales(self, stream_id: str, product_ids: Sequence[str] | None = None) -> StreamSales:
        """Paid orders of the stream added up (only the given products' when given)."""
        ...


class InvalidTransition(Exception):
    def __init__(self, current: StreamState, wanted: StreamState) -> None:
        super().__init__(f"stream is {current}, cannot become {wanted}")
        self.current = current
        self.wanted = wanted


class UnknownAccount(ValueError):
    """A record names an account (brand, host) that does not exist."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"no account {account_id}")
        self.account_id = account_id


class UnknownProduct(ValueError):
    """A stream names a product that does not exist, or pins one it does not show."""

    def __init__(self, product_id: str, message: str | None = None) -> None:
        super().__init__(message or f"no product {product_id}")
        self.product_id = product_id


def store_for_url(url: str) -> SqlStore:
    """An unopened store for a database URL; `open()` it (or `connect()` then
    `migrate(target)`, which is how tests stop at an older schema).

    `sqlite:///relative/path.db` or `sqlite:////absolute/path.db` → SQLite
    (parent directory created on open). `postgresql://…` or `postgres://…` →
    PostgreSQL; a `search_path=SCHEMA` query parameter keeps livecart's tables
    in that (existing) schema. Any other scheme → ValueError naming it.
    """
    scheme = url.partition(":")[0].lower() if "://" in url else ""
    # Imported here so that a SQLite install never imports asyncpg and vice versa.
    if scheme == "sqlite":
        from checkout.store_sqlite import SqliteStore

        return SqliteStore(url)
    if scheme in ("postgresql", "postgres"):
        from checkout.store_postgres import PostgresStore

        return PostgresStore(url)
    raise ValueError(f"unknown database URL scheme {scheme!r}: use sqlite:///path or postgresql://…")


async def open_store(url: str) -> Store:
    """Connect to the database at url and migrate it to the newest schema.

    Raises ValueError for an unknown scheme or malformed URL and StoreError when
    the database cannot be reached or its schema is newer than this code.
    """
    store = store_for_url(url)
    await store.open()
    return store
