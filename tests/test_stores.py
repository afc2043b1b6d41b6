"""Every package's store, told as what a caller sees, on SQLite and PostgreSQL alike.

Accounts (core), products, sales and orders (checkout), streams (streaming): each store owns
its tables and runs on the core driver. The `stores` fixture gives every test a database of
its own (tests/databases.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import secrets
import time
from typing import Any

import pytest

from checkout.records import MinuteSales, Order, OrderStatus, ProductSales, StreamSales
from core.accounts import UnknownAccount
from core.db.driver import ConstraintViolation, InvalidValue
from core.identity import Account, Role
from core.ids import new_id
from streaming.records import STREAM_TRANSITIONS, InvalidTransition, Stream, StreamState, UnknownProduct
from tests.databases import Backend, Stores, make_brand, make_host, make_product, make_stream

LIVE, SCHEDULED, ENDED = StreamState.LIVE, StreamState.SCHEDULED, StreamState.ENDED


# -- accounts and meta ----------------------------------------------------------


async def test_account_round_trip(stores: Stores) -> None:
    before = time.time()
    account = await stores.accounts.create_account(Role.HOST, "Mia Chen", "hash-of-mias-token")
    after = time.time()

    assert account.id.startswith("acc_") and len(account.id) > 16
    assert account.role is Role.HOST
    assert account.name == "Mia Chen"
    assert before <= account.created_at <= after
    assert await stores.accounts.get_account(account.id) == account
    assert await stores.accounts.account_by_token_hash("hash-of-mias-token") == account


async def test_every_role_is_kept(stores: Stores) -> None:
    for role in Role:
        account = await stores.accounts.create_account(role, f"a {role}", f"hash-{role}")
        assert (await stores.accounts.get_account(account.id)) == account
        assert (await stores.accounts.account_by_token_hash(f"hash-{role}")) == account


async def test_unknown_account_and_token_give_none(stores: Stores) -> None:
    await stores.accounts.create_account(Role.VIEWER, "Leo", "leos-hash")
    assert await stores.accounts.get_account("acc_nope") is None
    assert await stores.accounts.account_by_token_hash("someone-elses-hash") is None


async def test_a_token_hash_belongs_to_one_account(stores: Stores) -> None:
    first = await stores.accounts.create_account(Role.VIEWER, "Leo", "same-hash")
    with pytest.raises(ValueError, match="token hash"):
        await stores.accounts.create_account(Role.VIEWER, "Ana", "same-hash")
    assert await stores.accounts.account_by_token_hash("same-hash") == first


async def test_meta_keeps_the_first_value(stores: Stores) -> None:
    assert await stores.accounts.get_meta("admin_token_hash") is None
    assert await stores.accounts.set_meta_if_absent("admin_token_hash", "first") == "first"
    assert await stores.accounts.set_meta_if_absent("admin_token_hash", "second") == "first"
    assert await stores.accounts.get_meta("admin_token_hash") == "first"


# -- catalog --------------------------------------------------------------------


async def test_product_round_trip(stores: Stores) -> None:
    brand = await make_brand(stores)
    before = time.time()
    product = await make_product(stores, brand.id)
    bare = await make_product(stores, brand.id, image_url=None, description=None, stock=0)

    assert product.id.startswith("prd_")
    assert (product.brand_id, product.title, product.price) == (brand.id, "Silk scarf", 2900)
    assert (product.currency, product.stock) == ("USD", 50)
    assert product.image_url == "https://img.example/scarf.jpg"
    assert product.description == "Hand-rolled edges."
    assert before <= product.created_at == product.updated_at <= time.time()
    assert await stores.products.get_product(product.id) == product
    assert await stores.products.get_product(bare.id) == bare
    assert (bare.image_url, bare.description, bare.stock) == (None, None, 0)


async def test_big_prices_and_stock_survive(stores: Stores) -> None:
    brand = await make_brand(stores)
    product = await make_product(stores, brand.id, price=2**53 + 1, stock=2**40)
    assert await stores.products.get_product(product.id) == product


async def test_get_products_keeps_the_asked_order_and_drops_unknown(stores: Stores) -> None:
    brand = await make_brand(stores)
    a, b, c = [await make_product(stores, brand.id, title=t) for t in "abc"]

    got = await stores.products.get_products([c.id, "prd_missing", a.id, c.id, b.id])

    assert got == [c, a, b]
    assert await stores.products.get_products([]) == []
    assert await stores.products.get_product("prd_missing") is None


async def test_product_needs_an_existing_brand(stores: Stores) -> None:
    with pytest.raises(UnknownAccount) as refused:
        await make_product(stores, "acc_ghost")
    assert refused.value.account_id == "acc_ghost"


@pytest.mark.parametrize(
    "bad",
    [{"price": -1}, {"price": 9.99}, {"stock": "5"}, {"currency": "usd"}, {"title": ""}],
)
async def test_product_values_the_schema_cannot_hold_are_refused(stores: Stores, bad: dict[str, Any]) -> None:
    brand = await make_brand(stores)
    product = await make_product(stores, brand.id)
    with pytest.raises(ValueError):
        await make_product(stores, brand.id, **bad)
    with pytest.raises(ValueError):
        await stores.products.update_product(product.id, bad)
    assert await stores.products.get_product(product.id) == product


async def test_update_product_changes_only_the_given_fields(stores: Stores) -> None:
    brand = await make_brand(stores)
    product = await make_product(stores, brand.id)
    other = await make_product(stores, brand.id, title="Untouched")

    updated = await stores.products.update_product(product.id, {"stock": 80, "description": None})

    assert updated is not None
    assert (updated.stock, updated.description) == (80, None)
    assert updated.updated_at > product.updated_at
    unchanged = ("id", "brand_id", "title", "price", "currency", "image_url", "created_at")
    for field in unchanged:
        assert getattr(updated, field) == getattr(product, field), field
    assert await stores.products.get_product(product.id) == updated
    assert await stores.products.get_product(other.id) == other


async def test_update_product_can_change_every_mutable_field(stores: Stores) -> None:
    brand = await make_brand(stores)
    product = await make_product(stores, brand.id)
    changes = {
        "title": "Wool scarf",
        "price": 3100,
        "currency": "EUR",
        "stock": 7,
        "image_url": None,
        "description": "Warm.",
    }
    updated = await stores.products.update_product(product.id, changes)
    assert updated is not None
    assert {key: getattr(updated, key) for key in changes} == changes


async def test_update_product_refuses_other_fields(stores: Stores) -> None:
    brand = await make_brand(stores)
    product = await make_product(stores, brand.id)
    for bad in ({"brand_id": "acc_x"}, {"id": "prd_x"}, {"stock": 1, "created_at": 0.0}):
        with pytest.raises(ValueError, match="cannot be changed"):
            await stores.products.update_product(product.id, bad)
    assert await stores.products.get_product(product.id) == product


async def test_update_unknown_product_gives_none(stores: Stores) -> None:
    assert await stores.products.update_product("prd_missing", {"stock": 3}) is None


# -- streams --------------------------------------------------------------------


async def test_stream_round_trip_keeps_the_hosts_product_order(stores: Stores) -> None:
    host = await make_host(stores)
    brand = await make_brand(stores)
    a, b, c = [await make_product(stores, brand.id, title=t) for t in "abc"]
    before = time.time()

    stream = await stores.streams.create_stream(
        host_id=host.id, title="Spring drop", product_ids=[c.id, a.id, b.id]
    )

    assert stream.id.startswith("str_")
    assert (stream.host_id, stream.title, stream.state) == (host.id, "Spring drop", SCHEDULED)
    assert stream.product_ids == (c.id, a.id, b.id)
    assert stream.pinned_product_id is None
    assert before <= stream.created_at <= time.time()
    assert (stream.started_at, stream.ended_at) == (None, None)
    assert await stores.streams.get_stream(stream.id) == stream
    assert await stores.streams.list_streams() == [stream]


async def test_a_stream_may_show_no_products(stores: Stores) -> None:
    stream = await make_stream(stores, n_products=0)
    assert stream.product_ids == ()
    assert await stores.streams.get_stream(stream.id) == stream


async def test_unknown_stream_gives_none(stores: Stores) -> None:
    assert await stores.streams.get_stream("str_missing") is None
    assert await stores.streams.set_stream_state("str_missing", LIVE, 1.0) is None
    assert await stores.streams.set_pinned("str_missing", None) is None
    assert await stores.streams.set_pinned("str_missing", "prd_x") is None


async def test_create_stream_with_an_unknown_product_leaves_nothing(stores: Stores, backend: Backend) -> None:
    host = await make_host(stores)
    brand = await make_brand(stores)
    real = await make_product(stores, brand.id)

    with pytest.raises(UnknownProduct) as refused:
        await stores.streams.create_stream(host_id=host.id, title="Oops", product_ids=[real.id, "prd_ghost"])

    assert refused.value.product_id == "prd_ghost"
    assert await stores.streams.list_streams() == []
    assert await backend.scalar("SELECT COUNT(*) FROM streams") == 0
    assert await backend.scalar("SELECT COUNT(*) FROM stream_products") == 0


async def test_create_stream_needs_an_existing_host(stores: Stores) -> None:
    with pytest.raises(UnknownAccount):
        await stores.streams.create_stream(host_id="acc_ghost", title="Oops", product_ids=[])
    assert await stores.streams.list_streams() == []


async def test_create_stream_refuses_a_product_listed_twice(stores: Stores) -> None:
    host = await make_host(stores)
    brand = await make_brand(stores)
    product = await make_product(stores, brand.id)
    with pytest.raises(ValueError, match="more than once"):
        await stores.streams.create_stream(host_id=host.id, title="x", product_ids=[product.id] * 2)
    assert await stores.streams.list_streams() == []


async def test_list_streams_shows_live_first_then_scheduled_then_ended(stores: Stores) -> None:
    old_scheduled = await make_stream(stores, title="old scheduled")
    early_live = await make_stream(stores, title="early live")
    late_live = await make_stream(stores, title="late live")
    long_ended = await make_stream(stores, title="long ended")
    just_ended = await make_stream(stores, title="just ended")
    new_scheduled = await make_stream(stores, title="new scheduled")
    await stores.streams.set_stream_state(early_live.id, LIVE, 100.0)
    await stores.streams.set_stream_state(late_live.id, LIVE, 200.0)
    await stores.streams.set_stream_state(long_ended.id, ENDED, 50.0)
    await stores.streams.set_stream_state(just_ended.id, LIVE, 10.0)
    await stores.streams.set_stream_state(just_ended.id, ENDED, 300.0)

    titles = [s.title for s in await stores.streams.list_streams()]

    assert titles == [
        late_live.title,
        early_live.title,
        new_scheduled.title,
        old_scheduled.title,
        just_ended.title,
        long_ended.title,
    ]
    assert [s.title for s in await stores.streams.list_streams(limit=3)] == titles[:3]
    assert await stores.streams.list_streams(limit=0) == []
    listed = await stores.streams.list_streams(limit=1)
    assert listed == [await stores.streams.get_stream(late_live.id)]
    assert len(listed[0].product_ids) == 2


async def test_list_streams_refuses_a_negative_limit(stores: Stores) -> None:
    with pytest.raises(ValueError):
        await stores.streams.list_streams(limit=-1)


async def _stream_in(stores: Stores, state: StreamState) -> Stream:
    stream = await make_stream(stores)
    if state is not SCHEDULED:
        await stores.streams.set_stream_state(stream.id, LIVE, 10.0)
    if state is ENDED:
        await stores.streams.set_stream_state(stream.id, ENDED, 20.0)
    got = await stores.streams.get_stream(stream.id)
    assert got is not None and got.state is state
    return got


@pytest.mark.parametrize("start", list(StreamState))
@pytest.mark.parametrize("wanted", list(StreamState))
async def test_stream_transitions(stores: Stores, start: StreamState, wanted: StreamState) -> None:
    stream = await _stream_in(stores, start)

    if start is wanted:
        assert await stores.streams.set_stream_state(stream.id, wanted, 99.0) == stream
    elif (start, wanted) in STREAM_TRANSITIONS:
        moved = await stores.streams.set_stream_state(stream.id, wanted, 99.0)
        expected_started = 99.0 if wanted is LIVE else stream.started_at
        assert moved is not None
        assert moved.state is wanted
        assert moved.started_at == expected_started
        assert moved.ended_at == (99.0 if wanted is ENDED else None)
        assert await stores.streams.get_stream(stream.id) == moved
    else:
        with pytest.raises(InvalidTransition) as refused:
            await stores.streams.set_stream_state(stream.id, wanted, 99.0)
        assert (refused.value.current, refused.value.wanted) == (start, wanted)
        assert await stores.streams.get_stream(stream.id) == stream


def test_the_transition_table() -> None:
    assert STREAM_TRANSITIONS == {(SCHEDULED, LIVE), (SCHEDULED, ENDED), (LIVE, ENDED)}


async def test_repeating_a_state_keeps_the_first_stamps(stores: Stores) -> None:
    stream = await make_stream(stores)
    await stores.streams.set_stream_state(stream.id, LIVE, 100.0)
    again = await stores.streams.set_stream_state(stream.id, LIVE, 200.0)
    assert again is not None and again.started_at == 100.0

    await stores.streams.set_stream_state(stream.id, ENDED, 300.0)
    again = await stores.streams.set_stream_state(stream.id, ENDED, 400.0)
    assert again is not None
    assert (again.state, again.started_at, again.ended_at) == (ENDED, 100.0, 300.0)


async def test_ending_a_scheduled_stream_never_starts_it(stores: Stores) -> None:
    stream = await make_stream(stores)
    ended = await stores.streams.set_stream_state(stream.id, ENDED, 5.0)
    assert ended is not None
    assert (ended.state, ended.started_at, ended.ended_at) == (ENDED, None, 5.0)


async def test_two_stores_racing_to_go_live_agree(backend: Backend) -> None:
    first, second = await backend.open(), await backend.open()
    stream = await make_stream(first)

    a, b = await asyncio.gather(
        first.streams.set_stream_state(stream.id, LIVE, 1.0),
        second.streams.set_stream_state(stream.id, LIVE, 2.0),
    )

    assert a is not None and b is not None
    assert a.state is b.state is LIVE
    assert a.started_at == b.started_at in (1.0, 2.0)


async def test_pin_and_unpin(stores: Stores) -> None:
    stream = await make_stream(stores, n_products=3)
    second = stream.product_ids[1]

    pinned = await stores.streams.set_pinned(stream.id, second)
    assert pinned is not None and pinned.pinned_product_id == second
    assert pinned.product_ids == stream.product_ids
    assert await stores.streams.get_stream(stream.id) == pinned

    unpinned = await stores.streams.set_pinned(stream.id, None)
    assert unpinned == stream
    assert await stores.streams.get_stream(stream.id) == stream


async def test_only_the_streams_own_products_can_be_pinned(stores: Stores) -> None:
    stream = await make_stream(stores)
    brand = await make_brand(stores)
    elsewhere = await make_product(stores, brand.id)
    for product_id in (elsewhere.id, "prd_ghost"):
        with pytest.raises(UnknownProduct):
            await stores.streams.set_pinned(stream.id, product_id)
    assert await stores.streams.get_stream(stream.id) == stream


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


async def test_concurrent_rush_orders_are_written_together_each_with_its_own_answer(stores: Stores) -> None:
    stream = await make_stream(stores, n_products=1)
    sale = await stores.sales.create_sale(
        stream_id=stream.id,
        product_id=stream.product_ids[0],
        price=990,
        currency="USD",
        quantity=10,
        per_viewer_limit=5,
        duration_s=60,
    )
    viewers = [
        await stores.accounts.create_account(Role.VIEWER, f"v{i}", secrets.token_hex(16)) for i in range(40)
    ]
    orders = [_rush_order(stream, v.id, f"k{i}", sale.id) for i, v in enumerate(viewers)]
    twin = _rush_order(stream, viewers[0].id, "k0", sale.id)  # the same tap sent twice at once
    stranger = _rush_order(stream, "acc_nobody", "k-stranger", sale.id)  # refused by the database
    # text neither database can store (a lone surrogate, as a raw \xff header byte decodes)
    garbled = _rush_order(stream, viewers[1].id, "k\udcff", sale.id)

    answers = await asyncio.gather(
        *(
            stores.orders.create_order(o, take_product_stock=False)
            for o in [*orders, twin, stranger, garbled]
        ),
        return_exceptions=True,
    )

    assert answers[:40] == orders  # each its own order, every field as given
    assert answers[40] == orders[0]  # the twin gets the order stored under its key
    assert isinstance(answers[41], ConstraintViolation)  # only the bad rows' callers hear of them
    assert isinstance(answers[42], InvalidValue)
    for order in orders:
        assert await stores.orders.get_order(order.id) == order  # read back exactly (floats too)
    for refused in (twin, stranger, garbled):
        assert await stores.orders.get_order(refused.id) is None


async def test_stream_sales_add_up_paid_orders_only(stores: Stores) -> None:
    host, brand, other_brand = (
        await make_host(stores),
        await make_brand(stores),
        await make_brand(stores, "B"),
    )
    made = [await make_product(stores, brand.id), await make_product(stores, other_brand.id)]
    stream = await stores.streams.create_stream(
        host_id=host.id, title="Two brands", product_ids=[p.id for p in made]
    )
    other = await make_stream(stores, n_products=1)
    ann, bo, cy = [
        await stores.accounts.create_account(Role.VIEWER, n, secrets.token_hex(16)) for n in ("a", "b", "c")
    ]
    p0, p1 = stream.product_ids
    paid: list[Order] = []

    async def order(s: Stream, product: str, who: Account, qty: int, price: int, *moves: OrderStatus) -> None:
        """An order placed (pending), then moved as a payment, a refund or an expiry moves it."""
        base = _rush_order(s, who.id, secrets.token_hex(4), sale_id="")
        made = dataclasses.replace(
            base, product_id=product, sale_id=None, quantity=qty, unit_price=price, amount=qty * price
        )
        current = await stores.orders.create_order(made, take_product_stock=False)
        for status in moves:
            moved = await stores.orders.transition(current.id, status)
            assert moved is not None and moved[1], (current.status, status)
            current = moved[0]
        if current.status is OrderStatus.PAID and s.id == stream.id:
            paid.append(current)

    await order(stream, p0, ann, 2, 990, OrderStatus.PAID)
    await order(stream, p0, bo, 1, 990, OrderStatus.PAID)
    await order(stream, p1, ann, 1, 500, OrderStatus.PAID)
    await order(stream, p1, cy, 3, 500, OrderStatus.PAID, OrderStatus.REFUNDED)  # taken back out
    await order(stream, p0, cy, 1, 990)  # not paid (yet)
    await order(stream, p0, cy, 1, 990, OrderStatus.EXPIRED)
    await order(other, other.product_ids[0], cy, 5, 100, OrderStatus.PAID)  # another show

    sales = await stores.orders.stream_sales(stream.id)

    assert (sales.orders, sales.units, sales.buyers) == (3, 4, 2)
    assert sales.products == tuple(
        sorted(
            [ProductSales(p0, "USD", 2, 3, 2970), ProductSales(p1, "USD", 1, 1, 500)],
            key=lambda p: p.product_id,
        )
    )
    minutes: dict[float, list[Order]] = {}
    for o in paid:
        assert o.paid_at is not None
        minutes.setdefault(math.floor(o.paid_at / 60) * 60.0, []).append(o)
    assert sales.timeline == tuple(
        MinuteSales(t, "USD", len(os), sum(o.amount for o in os)) for t, os in sorted(minutes.items())
    )
    # a brand sees only its own products (and its own buyers)
    mine = await stores.orders.stream_sales(stream.id, other_brand.id)
    assert (mine.orders, mine.units, mine.buyers) == (1, 1, 1)
    assert mine.products == (ProductSales(p1, "USD", 1, 1, 500),)
    assert sum(m.gmv for m in mine.timeline) == 500
    stranger = await make_brand(stores, "C")
    assert await stores.orders.stream_sales(stream.id, stranger.id) == StreamSales(stream.id, 0, 0, 0, (), ())
