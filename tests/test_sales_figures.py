"""Sales figures are kept as orders are paid and refunded; they always equal a recount of the
orders table (on SQLite and PostgreSQL), and the migration that introduced them counts the
orders already paid the same way the running server does."""

from __future__ import annotations

import dataclasses
import math
import secrets
from collections import defaultdict

import hypothesis
from hypothesis import strategies as st

from checkout import orders_sql
from checkout.records import LIVE, REPLAY, MinuteSales, Order, OrderStatus, ProductSales, StreamSales
from core.db.driver import placeholders
from core.identity import Role
from server.database import migrate
from tests.databases import Backend, Stores, make_brand, make_host, make_product, make_stream
from tests.test_stores import _rush_order

PATHS: dict[str, tuple[OrderStatus, ...]] = {
    "pending": (),
    "paid": (OrderStatus.PAID,),
    "refunded": (OrderStatus.PAID, OrderStatus.REFUNDED),
    "failed": (OrderStatus.FAILED,),
    "expired": (OrderStatus.EXPIRED,),
    "canceled": (OrderStatus.CANCELED,),
}
Op = tuple[int, int, int, str, bool]  # product, viewer, quantity, what happens to it, from the replay


def _scenarios(count: int) -> list[list[Op]]:
    ops = st.tuples(
        st.integers(0, 1), st.integers(0, 2), st.integers(1, 3), st.sampled_from(sorted(PATHS)), st.booleans()
    )
    found: list[list[Op]] = []

    @hypothesis.settings(max_examples=count, deadline=None, database=None, derandomize=True)
    @hypothesis.given(st.lists(ops, max_size=14))
    def collect(scenario: list[Op]) -> None:
        found.append(scenario)

    collect()
    return found


def recount(
    orders: list[Order], stream_id: str, product_ids: list[str] | None = None, channel: str = LIVE
) -> StreamSales:
    """The figures from the orders themselves, as they are in the table now: the show's (live),
    or its replay's (which have no minutes)."""
    paid = [
        o
        for o in orders
        if o.stream_id == stream_id
        and o.channel == channel
        and o.status is OrderStatus.PAID
        and (product_ids is None or o.product_id in product_ids)
    ]
    by_product: dict[tuple[str, str], list[Order]] = defaultdict(list)
    by_minute: dict[tuple[float, str], list[Order]] = defaultdict(list)
    for o in paid:
        assert o.paid_at is not None
        by_product[o.product_id, o.currency].append(o)
        by_minute[math.floor(o.paid_at / 60) * 60.0, o.currency].append(o)
    products = tuple(
        ProductSales(p, c, len(os), sum(o.quantity for o in os), sum(o.amount for o in os))
        for (p, c), os in sorted(by_product.items())
    )
    return StreamSales(
        stream_id,
        orders=len(paid),
        units=sum(o.quantity for o in paid),
        buyers=len({o.viewer_id for o in paid}),
        products=products,
        timeline=tuple(
            MinuteSales(t, c, len(os), sum(o.amount for o in os)) for (t, c), os in sorted(by_minute.items())
        )
        if channel == LIVE
        else (),
    )


async def test_figures_equal_a_recount_of_the_orders_after_any_mix_of_moves(stores: Stores) -> None:
    viewers = [
        (await stores.accounts.create_account(Role.VIEWER, f"v{i}", secrets.token_hex(16))).id
        for i in range(3)
    ]
    host = await make_host(stores)
    brands = [await make_brand(stores, "A"), await make_brand(stores, "B")]
    for scenario in _scenarios(30):
        products = [await make_product(stores, b.id) for b in brands]  # one product of each brand
        stream = await stores.streams.create_stream(
            host_id=host.id, title="Show", product_ids=[p.id for p in products]
        )
        made: list[str] = []
        for product, viewer, quantity, path, replay in scenario:
            base = _rush_order(stream, viewers[viewer], secrets.token_hex(6), sale_id="")
            order = dataclasses.replace(
                base,
                product_id=stream.product_ids[product],
                sale_id=None,
                quantity=quantity,
                unit_price=700 + 100 * product,
                amount=quantity * (700 + 100 * product),
                channel=REPLAY if replay else LIVE,
            )
            created = await stores.orders.create_order(order, take_product_stock=False)
            for status in PATHS[path]:
                moved = await stores.orders.transition(created.id, status)
                assert moved is not None and moved[1]
                again = await stores.orders.transition(created.id, status)  # changes nothing
                assert again is not None and again[1] is False
            made.append(created.id)
        table = [o for o in [await stores.orders.get_order(i) for i in made] if o is not None]
        assert await stores.orders.stream_sales(stream.id) == recount(table, stream.id), scenario
        for n, brand in enumerate(brands):
            theirs = await stores.orders.stream_sales(stream.id, brand.id)
            assert theirs == recount(table, stream.id, [stream.product_ids[n]]), scenario
            theirs = await stores.orders.replay_sales(stream.id, brand.id)
            assert theirs == recount(table, stream.id, [stream.product_ids[n]], REPLAY), scenario
        assert await stores.orders.replay_sales(stream.id) == recount(table, stream.id, None, REPLAY), (
            scenario
        )


async def test_the_migration_counts_orders_already_paid(backend: Backend) -> None:
    driver = backend.new_driver()
    await driver.connect()
    old = Stores.on(driver)
    await migrate(old.db, 6)  # the last version without kept figures
    stream = await make_stream(old, n_products=2)
    viewer = await old.accounts.create_account(Role.VIEWER, "v", secrets.token_hex(16))
    minute = 1_800_000_000.0
    # paid on the minute, in its first and second halves (PostgreSQL's cast would round those up)
    paid_at = [
        minute,
        minute + 29.9,
        minute + 30.0,
        minute + 45.5,
        minute + 59.999,
        minute + 60.0,
        minute + 150.5,
    ]
    orders = []
    for n, when in enumerate(paid_at):
        base = _rush_order(stream, viewer.id, secrets.token_hex(6), sale_id="")
        order = dataclasses.replace(
            base, product_id=stream.product_ids[n % 2], sale_id=None, quantity=1 + n % 3
        )
        order = dataclasses.replace(order, amount=order.quantity * order.unit_price)
        # written as version 6 had them (no `channel` yet: migration 9 adds it)
        row = {k: v for k, v in orders_sql._row(order).items() if k != "channel"}
        await old.db.execute(
            f"INSERT INTO orders ({', '.join(row)}) VALUES ({placeholders(1, len(row))})", *row.values()
        )
        await backend.raw(f"UPDATE orders SET status = 'paid', paid_at = {when!r} WHERE id = '{order.id}'")
        orders.append(dataclasses.replace(order, status=OrderStatus.PAID, paid_at=when))
    await old.db.close()

    new = await backend.open()  # migrates to the newest version
    assert await new.orders.stream_sales(stream.id) == recount(orders, stream.id)
    assert [m.orders for m in (await new.orders.stream_sales(stream.id)).timeline] == [5, 1, 1]
    product = await new.products.get_product(stream.product_ids[0])
    assert product is not None  # the show's one brand: its scope is the whole show, buyers counted too
    assert await new.orders.stream_sales(stream.id, product.brand_id) == recount(orders, stream.id)
