"""One test suite for flash-sale stock, in-process and Redis: no oversell, every step once."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import pytest
import redis.asyncio as redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from checkout.stock import (
    Counts,
    HoldLimitReached,
    HoldState,
    LimitReached,
    MemoryStock,
    SaleEnded,
    SoldOut,
    Stock,
    UnknownSale,
)
from checkout.stock_redis import RedisStock
from core.redis import Client, connect
from tests.conftest import REDIS_URL, redis_for
from tests.redis_cluster import RedisCluster

T = TypeVar("T")


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def stock(request: pytest.FixtureRequest) -> AsyncIterator[Stock]:
    if request.param == "memory":
        yield MemoryStock()
        return
    url, cluster = redis_for(request)
    client = connect(url, cluster=cluster)
    yield RedisStock(client)
    await client.aclose()


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


async def _sale(stock: Stock, quantity: int = 5, limit: int = 2, seconds: float = 60) -> str:
    sale = new_id("sale")
    await stock.open_sale(sale, quantity=quantity, per_viewer_limit=limit, ends_at=time.time() + seconds)
    return sale


async def test_reserve_commit_release_move_units_exactly_once(stock: Stock) -> None:
    sale = await _sale(stock)
    hold = await stock.reserve(sale, "ord_1", "v1", 2, ttl=60, max_held=99)
    assert (hold.state, hold.quantity, hold.viewer_id) == (HoldState.HELD, 2, "v1")
    assert await stock.reserve(sale, "ord_1", "v1", 2, ttl=60, max_held=99) == hold  # a retry: same hold
    assert await stock.counts(sale) == Counts(quantity=5, remaining=3, held=2, sold=0)
    committed = await stock.commit(sale, "ord_1")
    assert committed is not None and committed.state is HoldState.SOLD
    assert await stock.commit(sale, "ord_1") == committed
    assert await stock.release(sale, "ord_1") == committed  # a sold unit does not come back
    counts = await stock.counts(sale)
    assert (counts.remaining, counts.held, counts.sold) == (3, 0, 2)
    await stock.reserve(sale, "ord_2", "v2", 1, ttl=60, max_held=99)
    released = await stock.release(sale, "ord_2")
    assert released is not None and released.state is HoldState.RELEASED
    assert await stock.release(sale, "ord_2") == released
    assert await stock.commit(sale, "ord_2") == released  # a released hold cannot be paid for
    counts = await stock.counts(sale)
    assert (counts.remaining, counts.held, counts.sold) == (3, 0, 2)
    assert await stock.commit(sale, "ord_missing") is None
    assert await stock.get_hold(sale, "ord_1") == committed


async def test_refusals_change_nothing(stock: Stock) -> None:
    sale = await _sale(stock, quantity=3, limit=2)
    with pytest.raises(LimitReached):
        await stock.reserve(sale, "o1", "v1", 3, ttl=60, max_held=99)
    await stock.reserve(sale, "o2", "v1", 2, ttl=60, max_held=99)
    with pytest.raises(LimitReached):
        await stock.reserve(sale, "o3", "v1", 1, ttl=60, max_held=99)
    with pytest.raises(SoldOut):
        await stock.reserve(sale, "o4", "v2", 2, ttl=60, max_held=99)
    await stock.reserve(sale, "o5", "v2", 1, ttl=60, max_held=99)
    with pytest.raises(SoldOut, match="sold out"):
        await stock.reserve(sale, "o6", "v3", 1, ttl=60, max_held=99)
    with pytest.raises(UnknownSale):
        await stock.reserve("sale_nope", "o7", "v3", 1, ttl=60, max_held=99)
    counts = await stock.counts(sale)
    assert (counts.remaining, counts.held, counts.sold) == (0, 3, 0)
    # a hold given back makes its unit available again
    await stock.release(sale, "o5")
    assert (await stock.reserve(sale, "o8", "v3", 1, ttl=60, max_held=99)).state is HoldState.HELD


async def test_one_viewer_holds_at_most_max_held_unpaid_units(stock: Stock) -> None:
    sale = await _sale(stock, quantity=20, limit=20)
    await stock.reserve(sale, "o1", "v1", 2, ttl=60, max_held=3)
    with pytest.raises(HoldLimitReached):
        await stock.reserve(sale, "o2", "v1", 2, ttl=60, max_held=3)
    await stock.reserve(sale, "o3", "v2", 3, ttl=60, max_held=3)  # another viewer has their own
    await stock.commit(sale, "o1")  # paid: no longer held
    await stock.reserve(sale, "o4", "v1", 3, ttl=60, max_held=3)
    await stock.release(sale, "o4")  # canceled: no longer held
    await stock.reserve(sale, "o5", "v1", 3, ttl=0.1, max_held=3)
    await asyncio.sleep(0.2)
    await stock.expire()  # expired: no longer held
    hold = await stock.reserve(sale, "o6", "v1", 3, ttl=60, max_held=3)
    assert hold.state is HoldState.HELD
    counts = await stock.counts(sale)
    assert (counts.held, counts.sold, counts.remaining) == (6, 2, 12)


async def test_a_sale_that_ended_refuses_but_its_holds_still_commit(stock: Stock) -> None:
    sale = await _sale(stock)
    await stock.reserve(sale, "o1", "v1", 1, ttl=60, max_held=99)
    await stock.end_sale(sale, time.time() - 1)
    with pytest.raises(SaleEnded):
        await stock.reserve(sale, "o2", "v2", 1, ttl=60, max_held=99)
    committed = await stock.commit(sale, "o1")
    assert committed is not None and committed.state is HoldState.SOLD


async def test_expired_holds_return_and_cannot_be_paid(stock: Stock) -> None:
    sale = await _sale(stock, quantity=2)
    await stock.reserve(sale, "o1", "v1", 1, ttl=0.2, max_held=99)
    await stock.reserve(sale, "o2", "v2", 1, ttl=60, max_held=99)
    await asyncio.sleep(0.3)
    # paying for a hold after it expired loses it (the caller cancels the payment)
    late = await stock.commit(sale, "o1")
    assert late is not None and late.state is HoldState.RELEASED
    await stock.reserve(sale, "o3", "v3", 1, ttl=0.1, max_held=99)
    await asyncio.sleep(0.2)
    expired = [h for h in await stock.expire() if h.sale_id == sale]
    assert [h.hold_id for h in expired] == ["o3"]
    assert await stock.expire() == [] or all(h.sale_id != sale for h in await stock.expire())
    counts = await stock.counts(sale)
    assert (counts.remaining, counts.held, counts.sold) == (1, 1, 0)


async def test_a_rush_never_oversells(stock: Stock) -> None:
    sale = await _sale(stock, quantity=50, limit=1)
    results = await asyncio.gather(
        *(stock.reserve(sale, f"o{i}", f"v{i}", 1, ttl=60, max_held=99) for i in range(400)),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, Exception)]
    assert len(won) == 50
    assert all(isinstance(e, SoldOut) for e in lost)
    counts = await stock.counts(sale)
    assert (counts.remaining, counts.held, counts.sold) == (0, 50, 0)


class StockMachine(RuleBasedStateMachine):
    """Any sequence of reserve/commit/release/expire keeps sold + held + remaining = quantity."""

    backend = "memory"
    cluster_url = ""  # the redis-cluster machine's seed node

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.client: Client | None = None
        if self.backend == "redis":
            self.client = redis.from_url(REDIS_URL)
        elif self.backend == "redis-cluster":
            self.client = connect(self.cluster_url, cluster=True)
        self.stock: Stock = RedisStock(self.client) if self.client is not None else MemoryStock()
        self.sale = new_id("sale")
        self.quantity = 6
        self.run(
            self.stock.open_sale(
                self.sale, quantity=self.quantity, per_viewer_limit=3, ends_at=time.time() + 600
            )
        )
        self.holds: list[str] = []
        self.sold: set[str] = set()
        self.released: set[str] = set()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        if self.client is not None:
            self.run(self.client.aclose())
        self.loop.close()

    @rule(viewer=st.sampled_from(["a", "b", "c"]), quantity=st.integers(1, 3), retry=st.booleans())
    def reserve(self, viewer: str, quantity: int, retry: bool) -> None:
        hold_id = self.holds[-1] if retry and self.holds else f"h{len(self.holds)}"
        try:
            self.run(self.stock.reserve(self.sale, hold_id, viewer, quantity, ttl=600, max_held=99))
        except (SoldOut, LimitReached):
            return
        if hold_id not in self.holds:
            self.holds.append(hold_id)

    @precondition(lambda self: self.holds)
    @rule(index=st.integers(0, 50))
    def commit(self, index: int) -> None:
        hold_id = self.holds[index % len(self.holds)]
        hold = self.run(self.stock.commit(self.sale, hold_id))
        assert hold is not None
        if hold_id in self.released:
            assert hold.state is HoldState.RELEASED
        else:
            assert hold.state is HoldState.SOLD
            self.sold.add(hold_id)

    @precondition(lambda self: self.holds)
    @rule(index=st.integers(0, 50))
    def release(self, index: int) -> None:
        hold_id = self.holds[index % len(self.holds)]
        hold = self.run(self.stock.release(self.sale, hold_id))
        assert hold is not None
        if hold_id in self.sold:
            assert hold.state is HoldState.SOLD
        else:
            assert hold.state is HoldState.RELEASED
            self.released.add(hold_id)

    @rule()
    def expire_everything_due_in_the_far_future(self) -> None:
        for hold in self.run(self.stock.expire(now=time.time() + 3600)):
            if hold.sale_id == self.sale:
                self.released.add(hold.hold_id)

    @invariant()
    def units_are_conserved(self) -> None:
        counts = self.run(self.stock.counts(self.sale))
        assert counts.sold + counts.held + counts.remaining == self.quantity
        assert counts.remaining >= 0 and counts.held >= 0
        holds = [self.run(self.stock.get_hold(self.sale, h)) for h in self.sold]
        assert counts.sold == sum(hold.quantity for hold in holds if hold is not None)
        assert None not in holds


class RedisStockMachine(StockMachine):
    backend = "redis"


TestMemoryStockProperties = StockMachine.TestCase
TestMemoryStockProperties.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestRedisStockProperties = RedisStockMachine.TestCase
TestRedisStockProperties.settings = settings(
    max_examples=30, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_stock_properties_on_a_redis_cluster(redis_cluster: RedisCluster) -> None:
    class ClusterStockMachine(StockMachine):
        backend = "redis-cluster"
        cluster_url = redis_cluster.url

    run_state_machine_as_test(
        ClusterStockMachine,
        settings=settings(
            max_examples=20,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


async def test_reservations_arriving_together_each_get_their_own_answer(stock: Stock) -> None:
    small, big = await _sale(stock, quantity=3, limit=2), await _sale(stock, quantity=100, limit=1)
    taps = [
        (small, "a1", "ann", 2),
        (big, "b1", "ann", 1),
        (small, "a1", "ann", 2),  # the same tap twice at once: one hold
        (small, "a2", "ann", 1),  # over ann's limit of 2 in the small sale
        (small, "a3", "bob", 2),  # 1 left: not enough
        (small, "a4", "cy", 1),
        (small, "a5", "dee", 1),  # none left
        ("sale_nope", "x1", "ann", 1),
        (big, "b2", "bob", 1),
    ]

    results = await asyncio.gather(
        *(stock.reserve(sale, hold, viewer, qty, ttl=60, max_held=99) for sale, hold, viewer, qty in taps),
        return_exceptions=True,
    )

    kinds = [type(r).__name__ if isinstance(r, BaseException) else r.hold_id for r in results]
    assert kinds == ["a1", "b1", "a1", "LimitReached", "SoldOut", "a4", "SoldOut", "UnknownSale", "b2"]
    assert str(results[4]) == "only 1 left" and str(results[6]) == "sold out"
    assert await stock.counts(small) == Counts(quantity=3, remaining=0, held=3, sold=0)
    assert await stock.counts(big) == Counts(quantity=100, remaining=98, held=2, sold=0)
