"""The database every store runs on: drivers, migrations, URLs, and processes sharing one file.

On SQLite and PostgreSQL alike (the `backend` and `stores` fixtures, tests/databases.py).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from checkout.records import Product
from core.db.driver import StoreError
from core.db.migrations import collect
from core.identity import Account, Role
from server.database import HEAD, MIGRATIONS, migrate, open_database, schema_version
from streaming.records import StreamState
from tests.databases import (
    Backend,
    Stores,
    make_brand,
    make_host,
    make_product,
    postgres_backend,
    sqlite_backend,
)

LIVE = StreamState.LIVE


# -- lifecycle and migrations ---------------------------------------------------


async def test_a_new_database_is_at_the_newest_schema(stores: Stores) -> None:
    assert await schema_version(stores.db) == HEAD == len(MIGRATIONS)
    assert [m.version for m in MIGRATIONS] == list(range(1, HEAD + 1))
    # each package's tables come from its own schema folder, in one numbered sequence
    assert {m.package for m in MIGRATIONS} == {"core.schema", "streaming.schema", "checkout.schema"}
    await stores.db.ping()


async def test_migrations_never_go_backwards(stores: Stores) -> None:
    assert await migrate(stores.db, 1) == HEAD
    assert await schema_version(stores.db) == HEAD
    with pytest.raises(ValueError):
        await migrate(stores.db, HEAD + 1)


@pytest.mark.parametrize("start", [1, 2])
async def test_upgrading_keeps_every_row(backend: Backend, start: int) -> None:
    driver = backend.new_driver()
    await driver.connect()
    old = Stores.on(driver)
    assert await migrate(old.db, start) == start
    assert await schema_version(old.db) == start
    brand = await make_brand(old)
    await old.accounts.set_meta_if_absent("admin_token_hash", "abc")
    # A row written by some older release, straight into the table.
    await backend.raw(
        "INSERT INTO accounts (id, role, name, token_hash, created_at)"
        " VALUES ('acc_legacy', 'host', 'Old Host', 'legacy-hash', 12.5)"
    )
    if start >= 2:  # a product as the catalog of version 2 wrote it (before min_price, version 6)
        await backend.raw(
            "INSERT INTO products (id, brand_id, title, price, currency, stock, image_url, description,"
            f" created_at, updated_at) VALUES ('prd_legacy', '{brand.id}', 'Old scarf', 2900, 'USD', 5,"
            " NULL, NULL, 1.5, 2.5)"
        )
    else:
        with pytest.raises(StoreError):  # no catalog before version 2
            await make_product(old, brand.id)
    with pytest.raises(StoreError):  # no streams before version 3
        await old.streams.list_streams()
    await old.db.close()

    new = await backend.open()

    assert await schema_version(new.db) == HEAD
    assert await new.accounts.get_account(brand.id) == brand
    legacy = Account(id="acc_legacy", role=Role.HOST, name="Old Host", created_at=12.5)
    assert await new.accounts.account_by_token_hash("legacy-hash") == legacy
    assert await new.accounts.get_meta("admin_token_hash") == "abc"
    if start >= 2:
        product = Product(
            id="prd_legacy",
            brand_id=brand.id,
            title="Old scarf",
            price=2900,
            currency="USD",
            stock=5,
            image_url=None,
            description=None,
            created_at=1.5,
            updated_at=2.5,
            min_price=0,  # no floor for what was sold before floors existed
        )
        assert await new.products.get_product(product.id) == product
    else:
        product = await make_product(new, brand.id)
    stream = await new.streams.create_stream(host_id="acc_legacy", title="Reborn", product_ids=[product.id])
    assert await new.streams.get_stream(stream.id) == stream
    assert await backend.scalar("SELECT COUNT(*) FROM schema_migrations") == HEAD


async def test_a_newer_schema_is_refused(backend: Backend) -> None:
    stores = await backend.open()
    await backend.raw(f"INSERT INTO schema_migrations (version, applied_at) VALUES ({HEAD + 1}, 0)")
    message = rf"database schema version {HEAD + 1} is newer than this livecart \({HEAD}\)"

    with pytest.raises(StoreError, match=message):
        await backend.open()
    with pytest.raises(StoreError, match=message):
        await migrate(stores.db)


async def test_two_processes_opening_at_once_both_migrate_safely(backend: Backend) -> None:
    first, second = await asyncio.gather(backend.open(), backend.open())

    assert await schema_version(first.db) == await schema_version(second.db) == HEAD
    assert await backend.scalar("SELECT COUNT(*) FROM schema_migrations") == HEAD


async def test_two_connections_to_one_database_see_each_others_writes(backend: Backend) -> None:
    first, second = await backend.open(), await backend.open()

    brand = await make_brand(first)
    assert await second.accounts.get_account(brand.id) == brand
    product = await make_product(second, brand.id)
    assert await first.products.get_product(product.id) == product
    host = await make_host(first)
    stream = await second.streams.create_stream(host_id=host.id, title="Both", product_ids=[product.id])
    live = await first.streams.set_stream_state(stream.id, LIVE, 42.0)
    assert await second.streams.get_stream(stream.id) == live
    assert await second.accounts.set_meta_if_absent("k", "second") == "second"
    assert await first.accounts.set_meta_if_absent("k", "first") == "second"


# What `livecart serve --workers N` does at start: N processes open one database at once.
_PROCESS = """
import asyncio, sys
from core.accounts import AccountStore
from core.identity import Role
from server.database import open_database

async def main() -> None:
    db = await open_database(sys.argv[1])
    try:
        await AccountStore(db).create_account(Role.VIEWER, sys.argv[2], sys.argv[2])
    finally:
        await db.close()

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
    stores = await backend.open()
    for name in names:
        account = await stores.accounts.account_by_token_hash(name)
        assert account is not None and account.name == name
    assert await backend.scalar("SELECT COUNT(*) FROM schema_migrations") == HEAD


async def test_ping_fails_once_closed(stores: Stores) -> None:
    await stores.db.ping()
    await stores.db.close()
    with pytest.raises(StoreError):
        await stores.db.ping()
    await stores.db.close()  # closing twice is harmless


# -- URLs -----------------------------------------------------------------------


async def test_unknown_schemes_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'mysql'"):
        await open_database("mysql://root@localhost/livecart")
    with pytest.raises(ValueError, match="scheme"):
        await open_database(str(tmp_path / "livecart.db"))
    with pytest.raises(ValueError):
        await open_database("sqlite://")


async def test_sqlite_relative_path_and_missing_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    db = await open_database("sqlite:///nested/dir/livecart.db")
    try:
        assert await schema_version(db) == HEAD
    finally:
        await db.close()
    assert (tmp_path / "nested" / "dir" / "livecart.db").is_file()


async def test_sqlite_file_uses_wal_so_processes_can_share_it(tmp_path: Path) -> None:
    async with sqlite_backend(tmp_path) as backend:
        await backend.open()
        assert await backend.scalar("PRAGMA journal_mode") == "wal"


async def test_postgres_tables_live_in_the_search_path_schema() -> None:
    async with postgres_backend() as backend:
        await backend.open()
        tables = await backend.scalar(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        # schema_migrations, accounts, meta, products, streams, links, sales, orders, webhook events,
        # brand_hosts, sales_figures, sales_buyers, sales_buyer_counts, sales_reports, sales_report_stock,
        # replay_figures, replay_views
        assert tables == 17


async def test_unreachable_postgres_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot connect"):
        await open_database("postgresql://postgres@127.0.0.1:1/test")


def test_schema_numbers_are_one_sequence_across_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for package, names in {
        "alpha_schema": ["0001_a.sql", "0003_c.sql"],
        "beta_schema": ["0002_b.sql"],
    }.items():
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
        for name in names:
            (tmp_path / package / name).write_text(f"-- {name}\nCREATE TABLE t{name[3]} (id TEXT);\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    merged = collect("alpha_schema", "beta_schema")

    assert [(m.version, m.package) for m in merged] == [
        (1, "alpha_schema"),
        (2, "beta_schema"),
        (3, "alpha_schema"),
    ]
    assert merged[1].statements == ("CREATE TABLE t2 (id TEXT)",)
    with pytest.raises(RuntimeError, match="without gaps"):  # 1, 3: a package is missing
        collect("alpha_schema")
    (tmp_path / "beta_schema" / "0003_clash.sql").write_text("CREATE TABLE x (id TEXT);\n")
    with pytest.raises(RuntimeError, match="without gaps"):  # two packages took number 3
        collect("alpha_schema", "beta_schema")
