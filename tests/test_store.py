"""The store's contract, told as what a caller sees, on SQLite and PostgreSQL alike.

The `backend` fixture gives every test a database of its own: a SQLite file
under tmp_path, or a fresh PostgreSQL schema (passed as `?search_path=` on the
URL) dropped afterwards. PostgreSQL is the real server at
LIVECART_TEST_DATABASE_URL (default: the local `test` database); when it cannot
be reached the PostgreSQL half fails, it never skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from checkout.ids import new_id
from checkout.migrations import HEAD, MIGRATIONS
from checkout.orders import MinuteSales, Order, OrderStatus, ProductSales, StreamSales
from checkout.store import (
    STREAM_TRANSITIONS,
    Account,
    InvalidTransition,
    Product,
    Role,
    StoreError,
    Stream,
    StreamState,
    UnknownAccount,
    UnknownProduct,
    open_store,
    store_for_url,
)
from checkout.store_sql import SqlStore
from checkout.store_sqlite import sqlite_path

PG_URL = os.environ.get("LIVECART_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")

LIVE, SCHEDULED, ENDED = StreamState.LIVE, StreamState.SCHEDULED, StreamState.ENDED


class Backend:
    """One test's database: opens stores on it and runs raw SQL beside them."""

    def __init__(self, name: str, url: str, admin: Any = None) -> None:
        self.name = name
        self.url = url
        self._admin = admin  # PostgreSQL: a connection whose search_path is the schema
        self._stores: list[SqlStore] = []

    def new_store(self) -> SqlStore:
        """An unopened store, closed when the test ends."""
        store = store_for_url(self.url)
        self._stores.append(store)
        return store

    async def open_store(self) -> SqlStore:
        store = self.new_store()
        await store.open()
        return store

    async def raw(self, sql: str) -> None:
        """Run SQL on a connection of its own, as another program would."""
        if self._admin is not None:
            await self._admin.execute(sql)
            return
        with contextlib.closing(sqlite3.connect(sqlite_path(self.url))) as conn, conn:
            conn.execute(sql)

    async def scalar(self, sql: str) -> Any:
        if self._admin is not None:
            return await self._admin.fetchval(sql)
        with contextlib.closing(sqlite3.connect(sqlite_path(self.url))) as conn:
            return conn.execute(sql).fetchone()[0]

    async def close(self) -> None:
        for store in self._stores:
            await store.close()


@contextlib.asynccontextmanager
async def sqlite_backend(tmp_path: Path) -> AsyncIterator[Backend]:
    # An absolute path, so the URL takes the sqlite:////abs/path form; the
    # missing "data" directory checks that open creates it.
    backend = Backend("sqlite", f"sqlite:///{tmp_path / 'data' / 'livecart.db'}")
    try:
        yield backend
    finally:
        await backend.close()


@contextlib.asynccontextmanager
async def postgres_backend() -> AsyncIterator[Backend]:
    schema = f"test_store_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(PG_URL)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        await admin.execute(f"SET search_path TO {schema}")
        sep = "&" if "?" in PG_URL else "?"
        backend = Backend("postgresql", f"{PG_URL}{sep}search_path={schema}", admin)
        try:
            yield backend
        finally:
            await backend.close()
            await admin.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        async with sqlite_backend(tmp_path) as backend:
            yield backend
    else:
        async with postgres_backend() as backend:
            yield backend


@pytest.fixture
async def store(backend: Backend) -> SqlStore:
    return await backend.open_store()


async def make_brand(store: SqlStore, name: str = "Acme") -> Account:
    return await store.create_account(Role.BRAND, name, secrets.token_hex(16))


async def make_host(store: SqlStore, name: str = "Mia") -> Account:
    return await store.create_account(Role.HOST, name, secrets.token_hex(16))


async def make_product(store: SqlStore, brand_id: str, **fields: Any) -> Product:
    values: dict[str, Any] = {
        "title": "Silk scarf",
        "price": 2900,
        "currency": "USD",
        "stock": 50,
        "image_url": "https://img.example/scarf.jpg",
        "description": "Hand-rolled edges.",
    }
    values.update(fields)
    return await store.create_product(brand_id=brand_id, **values)


async def make_stream(store: SqlStore, n_products: int = 2, title: str = "Show") -> Stream:
    host = await make_host(store)
    brand = await make_brand(store)
    products = [await make_product(store, brand.id, title=f"P{i}") for i in range(n_products)]
    return await store.create_stream(host_id=host.id, title=title, product_ids=[p.id for p in products])


# -- accounts and meta ----------------------------------------------------------


async def test_account_round_trip(store: SqlStore) -> None:
    before = time.time()
    account = await store.create_account(Role.HOST, "Mia Chen", "hash-of-mias-token")
    after = time.time()

    assert account.id.startswith("acc_") and len(account.id) > 16
    assert account.role is Role.HOST
    assert account.name == "Mia Chen"
    assert before <= account.created_at <= after
    assert await store.get_account(account.id) == account
    assert await store.account_by_token_hash("hash-of-mias-token") == account


async def test_every_role_is_kept(store: SqlStore) -> None:
    for role in Role:
        account = await store.create_account(role, f"a {role}", f"hash-{role}")
        assert (await store.get_account(account.id)) == account
        assert (await store.account_by_token_hash(f"hash-{role}")) == account


async def test_unknown_account_and_token_give_none(store: SqlStore) -> None:
    await store.create_account(Role.VIEWER, "Leo", "leos-hash")
    assert await store.get_account("acc_nope") is None
    assert await store.account_by_token_hash("someone-elses-hash") is None


async def test_a_token_hash_belongs_to_one_account(store: SqlStore) -> None:
    first = await store.create_account(Role.VIEWER, "Leo", "same-hash")
    with pytest.raises(ValueError, match="token hash"):
        await store.create_account(Role.VIEWER, "Ana", "same-hash")
    assert await store.account_by_token_hash("same-hash") == first


async def test_meta_keeps_the_first_value(store: SqlStore) -> None:
    assert await store.get_meta("admin_token_hash") is None
    assert await store.set_meta_if_absent("admin_token_hash", "first") == "first"
    assert await store.set_meta_if_absent("admin_token_hash", "second") == "first"
    assert await store.get_meta("admin_token_hash") == "first"


# -- catalog --------------------------------------------------------------------


async def test_product_round_trip(store: SqlStore) -> None:
    brand = await make_brand(store)
    before = time.time()
    product = await make_product(store, brand.id)
    bare = await make_product(store, brand.id, image_url=None, description=None, stock=0)

    assert product.id.startswith("prd_")
    assert (product.brand_id, product.title, product.price) == (brand.id, "Silk scarf", 2900)
    assert (product.currency, product.stock) == ("USD", 50)
    assert product.image_url == "https://img.example/scarf.jpg"
    assert product.description == "Hand-rolled edges."
    assert before <= product.created_at == product.updated_at <= time.time()
    assert await store.get_product(product.id) == product
    assert await store.get_product(bare.id) == bare
    assert (bare.image_url, bare.description, bare.stock) == (None, None, 0)


async def test_big_prices_and_stock_survive(store: SqlStore) -> None:
    brand = await make_brand(store)
    product = await make_product(store, brand.id, price=2**53 + 1, stock=2**40)
    assert await store.get_product(product.id) == product


async def test_get_products_keeps_the_asked_order_and_drops_unknown(store: SqlStore) -> None:
    brand = await make_brand(store)
    a, b, c = [await make_product(store, brand.id, title=t) for t in "abc"]

    got = await store.get_products([c.id, "prd_missing", a.id, c.id, b.id])

    assert got == [c, a, b]
    assert await store.get_products([]) == []
    assert await store.get_product("prd_missing") is None


async def test_product_needs_an_existing_brand(store: SqlStore) -> None:
    with pytest.raises(UnknownAccount) as refused:
        await make_product(store, "acc_ghost")
    assert refused.value.account_id == "acc_ghost"


@pytest.mark.parametrize(
    "bad",
    [{"price": -1}, {"price": 9.99}, {"stock": "5"}, {"currency": "usd"}, {"title": ""}],
)
async def test_product_values_the_schema_cannot_hold_are_refused(
    store: SqlStore, bad: dict[str, Any]
) -> None:
    brand = await make_brand(store)
    product = await make_product(store, brand.id)
    with pytest.raises(ValueError):
        await make_product(store, brand.id, **bad)
    with pytest.raises(ValueError):
        await store.update_product(product.id, bad)
    assert await store.get_product(product.id) == product


async def test_update_product_changes_only_the_given_fields(store: SqlStore) -> None:
    brand = await make_brand(store)
    product = await make_product(store, brand.id)
    other = await make_product(store, brand.id, title="Untouched")

    updated = await store.update_product(product.id, {"stock": 80, "description": None})

    assert updated is not None
    assert (updated.stock, updated.description) == (80, None)
    assert updated.updated_at > product.updated_at
    unchanged = ("id", "brand_id", "title", "price", "currency", "image_url", "created_at")
    for field in unchanged:
        assert getattr(updated, field) == getattr(product, field), field
    assert await store.get_product(product.id) == updated
    assert await store.get_product(other.id) == other


async def test_update_product_can_change_every_mutable_field(store: SqlStore) -> None:
    brand = await make_brand(store)
    product = await make_product(store, brand.id)
    changes = {
        "title": "Wool scarf",
        "price": 3100,
        "currency": "EUR",
        "stock": 7,
        "image_url": None,
        "description": "Warm.",
    }
    updated = await store.update_product(product.id, changes)
    assert updated is not None
    assert {key: getattr(updated, key) for key in changes} == changes


async def test_update_product_refuses_other_fields(store: SqlStore) -> None:
    brand = await make_brand(store)
    product = await make_product(store, brand.id)
    for bad in ({"brand_id": "acc_x"}, {"id": "prd_x"}, {"stock": 1, "created_at": 0.0}):
        with pytest.raises(ValueError, match="cannot be changed"):
            await store.update_product(product.id, bad)
    assert await store.get_product(product.id) == product


async def test_update_unknown_product_gives_none(store: SqlStore) -> None:
    assert await store.update_product("prd_missing", {"stock": 3}) is None


# -- streams --------------------------------------------------------------------


async def test_stream_round_trip_keeps_the_hosts_product_order(store: SqlStore) -> None:
    host = await make_host(store)
    brand = await make_brand(store)
    a, b, c = [await make_product(store, brand.id, title=t) for t in "abc"]
    before = time.time()

    stream = await store.create_stream(host_id=host.id, title="Spring drop", product_ids=[c.id, a.id, b.id])

    assert stream.id.startswith("str_")
    assert (stream.host_id, stream.title, stream.state) == (host.id, "Spring drop", SCHEDULED)
    assert stream.product_ids == (c.id, a.id, b.id)
    assert stream.pinned_product_id is None
    assert before <= stream.created_at <= time.time()
    assert (stream.started_at, stream.ended_at) == (None, None)
    assert await store.get_stream(stream.id) == stream
    assert await store.list_streams() == [stream]


async def test_a_stream_may_show_no_products(store: SqlStore) -> None:
    stream = await make_stream(store, n_products=0)
    assert stream.product_ids == ()
    assert await store.get_stream(stream.id) == stream


async def test_unknown_stream_gives_none(store: SqlStore) -> None:
    assert await store.get_stream("str_missing") is None
    assert await store.set_stream_state("str_missing", LIVE, 1.0) is None
    assert await store.set_pinned("str_missing", None) is None
    assert await store.set_pinned("str_missing", "prd_x") is None


async def test_create_stream_with_an_unknown_product_leaves_nothing(
    store: SqlStore, backend: Backend
) -> None:
    host = await make_host(store)
    brand = await make_brand(store)
    real = await make_product(store, brand.id)

    with pytest.raises(UnknownProduct) as refused:
        await store.create_stream(host_id=host.id, title="Oops", product_ids=[real.id, "prd_ghost"])

    assert refused.value.product_id == "prd_ghost"
    assert await store.list_streams() == []
    assert await backend.scalar("SELECT COUNT(*) FROM streams") == 0
    assert await backend.scalar("SELECT COUNT(*) FROM stream_products") == 0


async def test_create_stream_needs_an_existing_host(store: SqlStore) -> None:
    with pytest.raises(UnknownAccount):
        await store.create_stream(host_id="acc_ghost", title="Oops", product_ids=[])
    assert await store.list_streams() == []


async def test_create_stream_refuses_a_product_listed_twice(store: SqlStore) -> None:
    host = await make_host(store)
    brand = await make_brand(store)
    product = await make_product(store, brand.id)
    with pytest.raises(ValueError, match="more than once"):
        await store.create_stream(host_id=host.id, title="x", product_ids=[product.id] * 2)
    assert await store.list_streams() == []


async def test_list_streams_shows_live_first_then_scheduled_then_ended(store: SqlStore) -> None:
    old_scheduled = await make_stream(store, title="old scheduled")
    early_live = await make_stream(store, title="early live")
    late_live = await make_stream(store, title="late live")
    long_ended = await make_stream(store, title="long ended")
    just_ended = await make_stream(store, title="just ended")
    new_scheduled = await make_stream(store, title="new scheduled")
    await store.set_stream_state(early_live.id, LIVE, 100.0)
    await store.set_stream_state(late_live.id, LIVE, 200.0)
    await store.set_stream_state(long_ended.id, ENDED, 50.0)
    await store.set_stream_state(just_ended.id, LIVE, 10.0)
    await store.set_stream_state(just_ended.id, ENDED, 300.0)

    titles = [s.title for s in await store.list_streams()]

    assert titles == [
        late_live.title,
        early_live.title,
        new_scheduled.title,
        old_scheduled.title,
        just_ended.title,
        long_ended.title,
    ]
    assert [s.title for s in await store.list_streams(limit=3)] == titles[:3]
    assert await store.list_streams(limit=0) == []
    listed = await store.list_streams(limit=1)
    assert listed == [await store.get_stream(late_live.id)]
    assert len(listed[0].product_ids) == 2


async def test_list_streams_refuses_a_negative_limit(store: SqlStore) -> None:
    with pytest.raises(ValueError):
        await store.list_streams(limit=-1)


async def _stream_in(store: SqlStore, state: StreamState) -> Stream:
    stream = await make_stream(store)
    if state is not SCHEDULED:
        await store.set_stream_state(stream.id, LIVE, 10.0)
    if state is ENDED:
        await store.set_stream_state(stream.id, ENDED, 20.0)
    got = await store.get_stream(stream.id)
    assert got is not None and got.state is state
    return got


@pytest.mark.parametrize("start", list(StreamState))
@pytest.mark.parametrize("wanted", list(StreamState))
async def test_stream_transitions(store: SqlStore, start: StreamState, wanted: StreamState) -> None:
    stream = await _stream_in(store, start)

    if start is wanted:
        assert await store.set_stream_state(stream.id, wanted, 99.0) == stream
    elif (start, wanted) in STREAM_TRANSITIONS:
        moved = await store.set_stream_state(stream.id, wanted, 99.0)
        expected_started = 99.0 if wanted is LIVE else stream.started_at
        assert moved is not None
        assert moved.state is wanted
        assert moved.started_at == expected_started
        assert moved.ended_at == (99.0 if wanted is ENDED else None)
        assert await store.get_stream(stream.id) == moved
    else:
        with pytest.raises(InvalidTransition) as refused:
            await store.set_stream_state(stream.id, wanted, 99.0)
        assert (refused.value.current, refused.value.wanted) == (start, wanted)
        assert await store.get_stream(stream.id) == stream


def test_the_transition_table() -> None:
    assert STREAM_TRANSITIONS == {(SCHEDULED, LIVE), (SCHEDULED, ENDED), (LIVE, ENDED)}


async def test_repeating_a_state_keeps_the_first_stamps(store: SqlStore) -> None:
    stream = await make_stream(store)
    await store.set_stream_state(stream.id, LIVE, 100.0)
    again = await store.set_stream_state(stream.id, LIVE, 200.0)
    assert again is not None and again.started_at == 100.0

    await store.set_stream_state(stream.id, ENDED, 300.0)
    again = await store.set_stream_state(stream.id, ENDED, 400.0)
    assert again is not None
    assert (again.state, again.started_at, again.ended_at) == (ENDED, 100.0, 300.0)


async def test_ending_a_scheduled_stream_never_starts_it(store: SqlStore) -> None:
    stream = await make_stream(store)
    ended = await store.set_stream_state(stream.id, ENDED, 5.0)
    assert ended is not None
    assert (ended.state, ended.started_at, ended.ended_at) == (ENDED, None, 5.0)


async def test_two_stores_racing_to_go_live_agree(backend: Backend) -> None:
    first, second = await backend.open_store(), await backend.open_store()
    stream = await make_stream(first)

    a, b = await asyncio.gather(
        first.set_stream_state(stream.id, LIVE, 1.0),
        second.set_stream_state(stream.id, LIVE, 2.0),
    )

    assert a is not None and b is not None
    assert a.state is b.state is LIVE
    assert a.started_at == b.started_at in (1.0, 2.0)


async def test_pin_and_unpin(store: SqlStore) -> None:
    stream = await make_stream(store, n_products=3)
    second = stream.product_ids[1]

    pinned = await store.set_pinned(stream.id, second)
    assert pinned is not None and pinned.pinned_product_id == second
    assert pinned.product_ids == stream.product_ids
    assert await store.get_stream(stream.id) == pinned

    unpinned = await store.set_pinned(stream.id, None)
    assert unpinned == stream
    assert await store.get_stream(stream.id) == stream


async def test_only_the_streams_own_products_can_be_pinned(store: SqlStore) -> None:
    stream = await make_stream(store)
    brand = await make_brand(store)
    elsewhere = await make_product(store, brand.id)
    for product_id in (elsewhere.id, "prd_ghost"):
        with pytest.raises(UnknownProduct):
            await store.set_pinned(stream.id, product_id)
    assert await store.get_stream(stream.id) == stream


# -- lifecycle and migrations ---------------------------------------------------


async def test_a_new_database_is_at_the_newest_schema(store: SqlStore) -> None:
    assert await store.schema_version() == HEAD == len(MIGRATIONS)
    assert [m.version for m in MIGRATIONS] == list(range(1, HEAD + 1))
    await store.ping()


async def test_migrations_never_go_backwards(store: SqlStore) -> None:
    assert await store.migrate(1) == HEAD
    assert await store.schema_version() == HEAD
    with pytest.raises(ValueError):
        await store.migrate(HEAD + 1)


@pytest.mark.parametrize("start", [1, 2])
async def test_upgrading_keeps_every_row(backend: Backend, start: int) -> None:
    old = backend.new_store()
    await old.connect()
    assert await old.migrate(start) == start
    assert await old.schema_version() == start
    brand = await make_brand(old)
    await old.set_meta_if_absent("admin_token_hash", "abc")
    # A row written by some older release, straight into the table.
    await backend.raw(
        "INSERT INTO accounts (id, role, name, token_hash, created_at)"
        " VALUES ('acc_legacy', 'host', 'Old Host', 'legacy-hash', 12.5)"
    )
    if start >= 2:
        product = await make_product(old, brand.id)
    else:
        with pytest.raises(StoreError):  # no catalog before version 2
            await make_product(old, brand.id)
    with pytest.raises(StoreError):  # no streams before version 3
        await old.list_streams()
    await old.close()

    new = await backend.open_store()

    assert await new.schema_version() == HEAD
    assert await new.get_account(brand.id) == brand
    legacy = Account(id="acc_legacy", role=Role.HOST, name="Old Host", created_at=12.5)
    assert await new.account_by_token_hash("legacy-hash") == legacy
    assert await new.get_meta("admin_token_hash") == "abc"
    if start >= 2:
        assert await new.get_product(product.id) == product
    else:
        product = await make_product(new, brand.id)
    stream = await new.create_stream(host_id="acc_legacy", title="Reborn", product_ids=[product.id])
    assert await new.get_stream(stream.id) == stream
    assert await backend.scalar("SELECT COUNT(*) FROM schema_migrations") == HEAD


async def test_a_newer_schema_is_refused(backend: Backend) -> None:
    store = await backend.open_store()
    await backend.raw(f"INSERT INTO schema_migrations (version, applied_at) VALUES ({HEAD + 1}, 0)")
    message = rf"database schema version {HEAD + 1} is newer than this livecart \({HEAD}\)"

    with pytest.raises(StoreError, match=message):
        await backend.open_store()
    with pytest.raises(StoreError, match=message):
        await store.migrate()


async def test_two_stores_opening_at_once_both_migrate_safely(backend: Backend) -> None:
    first, second = backend.new_store(), backend.new_store()

    await asyncio.gather(first.open(), second.open())

    assert await first.schema_version() == await second.schema_version() == HEAD
    assert await backend.scalar("SELECT COUNT(*) FROM schema_migrations") == HEAD


async def test_two_stores_on_one_database_see_each_others_writes(backend: Backend) -> None:
    first, second = await backend.open_store(), await backend.open_store()

    brand = await make_brand(first)
    assert await second.get_account(brand.id) == brand
    product = await make_product(second, brand.id)
    assert await first.get_product(product.id) == product
    host = await make_host(first)
    stream = await second.create_stream(host_id=host.id, title="Both", product_ids=[product.id])
    live = await first.set_stream_state(stream.id, LIVE, 42.0)
    assert await second.get_stream(stream.id) == live
    assert await second.set_meta_if_absent("k", "second") == "second"
    assert await first.set_meta_if_absent("k", "first") == "second"


# What `livecart serve --workers N` does at start: N processes open one database at once.
_PROCESS = """
import asyncio, sys
from checkout.store import Role, open_store

async def main() -> None:
    store = await open_store(sys.argv[1])
    try:
        await store.create_account(Role.VIEWER, sys.argv[2], sys.argv[2])
    finally:
        await store.close()

asyncio.run(main())
"""


async def test_processes_starting_together_share_one_database(backend: Backend) -> None:
    names = [f"process-{n}" for n in range(3)]
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _PROCESS,
            backend.url,
            name,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for name in names
    ]
    outputs = [await asyncio.wait_for(process.communicate(), 60) for process in processes]

    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    store = await backend.open_store()
    for name in names:
        account = await store.account_by_token_hash(name)
        assert account is not None and account.name == name
    assert await backend.scalar("SELECT COUNT(*) FROM schema_migrations") == HEAD


async def test_ping_fails_once_closed(store: SqlStore) -> None:
    await store.ping()
    await store.close()
    with pytest.raises(StoreError):
        await store.ping()
    await store.close()  # closing twice is harmless


# -- URLs -----------------------------------------------------------------------


async def test_unknown_schemes_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'mysql'"):
        await open_store("mysql://root@localhost/livecart")
    with pytest.raises(ValueError, match="scheme"):
        await open_store(str(tmp_path / "livecart.db"))
    with pytest.raises(ValueError):
        await open_store("sqlite://")


async def test_sqlite_relative_path_and_missing_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_store("sqlite:///nested/dir/livecart.db")
    try:
        assert await store.schema_version() == HEAD
    finally:
        await store.close()
    assert (tmp_path / "nested" / "dir" / "livecart.db").is_file()


async def test_sqlite_file_uses_wal_so_processes_can_share_it(tmp_path: Path) -> None:
    async with sqlite_backend(tmp_path) as backend:
        await backend.open_store()
        assert await backend.scalar("PRAGMA journal_mode") == "wal"


async def test_postgres_tables_live_in_the_search_path_schema() -> None:
    async with postgres_backend() as backend:
        await backend.open_store()
        tables = await backend.scalar(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        # schema_migrations, accounts, meta, products, streams, links, sales, orders, webhook events
        assert tables == 9


async def test_unreachable_postgres_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot connect"):
        await open_store("postgresql://postgres@127.0.0.1:1/test")


# -- rush orders ------------------------------------------------------------------


def _rush_order(stream: Stream, viewer_id: str, key: str, sale_id: str) -> Order:
    now = time.time()
    return Order(
        id=new_id("ord"),
        viewer_id=viewer_id,
        stream_id=stream.id,
        product_id=stream.product_ids[0],
        sale_id=sale_id,
        quantity=1,
        unit_price=990,
        amount=990,
        currency="USD",
        status=OrderStatus.PENDING_PAYMENT,
        idempotency_key=key,
        request_hash="h-" + key,
        provider="demo",
        intent_id="pi_" + key,
        client_secret="secret_" + key,
        created_at=now + 0.123456789,
        updated_at=now,
        expires_at=now + 600.000001,
        paid_at=None,
    )


async def test_concurrent_rush_orders_are_written_together_each_with_its_own_answer(store: SqlStore) -> None:
    stream = await make_stream(store, n_products=1)
    sale = await store.create_sale(
        stream_id=stream.id,
        product_id=stream.product_ids[0],
        price=990,
        currency="USD",
        quantity=10,
        per_viewer_limit=5,
        duration_s=60,
    )
    viewers = [await store.create_account(Role.VIEWER, f"v{i}", secrets.token_hex(16)) for i in range(40)]
    orders = [_rush_order(stream, v.id, f"k{i}", sale.id) for i, v in enumerate(viewers)]
    twin = _rush_order(stream, viewers[0].id, "k0", sale.id)  # the same tap sent twice at once
    stranger = _rush_order(stream, "acc_nobody", "k-stranger", sale.id)  # refused by the database

    answers = await asyncio.gather(
        *(store.create_order(o, take_product_stock=False) for o in [*orders, twin, stranger]),
        return_exceptions=True,
    )

    assert answers[:40] == orders  # each its own order, every field as given
    assert answers[40] == orders[0]  # the twin gets the order stored under its key
    assert isinstance(answers[41], ValueError)  # only the bad row's caller hears of it
    for order in orders:
        assert await store.get_order(order.id) == order  # read back exactly (floats too)
    assert await store.get_order(twin.id) is None and await store.get_order(stranger.id) is None


async def test_stream_sales_add_up_paid_orders_only(store: SqlStore) -> None:
    stream = await make_stream(store, n_products=2)
    other = await make_stream(store, n_products=1)
    ann, bo, cy = [await store.create_account(Role.VIEWER, n, secrets.token_hex(16)) for n in ("a", "b", "c")]
    p0, p1 = stream.product_ids
    minute = 1_800_000_000.0  # a minute's start

    async def order(
        s: Stream,
        product: str,
        who: Account,
        qty: int,
        price: int,
        status: OrderStatus,
        paid: float | None = None,
    ) -> None:
        base = _rush_order(s, who.id, secrets.token_hex(4), sale_id="")
        changes = {"product_id": product, "sale_id": None, "quantity": qty, "unit_price": price}
        made = dataclasses.replace(base, **changes, amount=qty * price, status=status, paid_at=paid)
        await store.create_order(made, take_product_stock=False)

    await order(stream, p0, ann, 2, 990, OrderStatus.PAID, minute + 5)
    await order(stream, p0, bo, 1, 990, OrderStatus.PAID, minute + 70)
    await order(stream, p1, ann, 1, 500, OrderStatus.PAID, minute + 10)
    await order(stream, p1, cy, 3, 500, OrderStatus.REFUNDED, minute + 20)  # taken back out
    await order(stream, p0, cy, 1, 990, OrderStatus.PENDING_PAYMENT)  # not paid (yet)
    await order(stream, p0, cy, 1, 990, OrderStatus.EXPIRED)
    await order(other, other.product_ids[0], cy, 5, 100, OrderStatus.PAID, minute)  # another show

    sales = await store.stream_sales(stream.id)

    assert (sales.orders, sales.units, sales.buyers) == (3, 4, 2)
    assert sales.products == tuple(
        sorted(
            [ProductSales(p0, "USD", 2, 3, 2970), ProductSales(p1, "USD", 1, 1, 500)],
            key=lambda p: p.product_id,
        )
    )
    assert sales.timeline == (MinuteSales(minute, "USD", 2, 2480), MinuteSales(minute + 60, "USD", 1, 990))
    # a brand sees only its own products
    mine = await store.stream_sales(stream.id, [p1])
    assert (mine.orders, mine.units, mine.buyers) == (1, 1, 1)
    assert mine.products == (ProductSales(p1, "USD", 1, 1, 500),)
    assert mine.timeline == (MinuteSales(minute, "USD", 1, 500),)
    assert await store.stream_sales(stream.id, []) == StreamSales(stream.id, 0, 0, 0, (), ())
