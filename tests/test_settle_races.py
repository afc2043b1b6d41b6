"""Races on one order, every way they can interleave: paying, canceling, failing, expiring.

A pending order can be reached at once by its payment (a webhook, a duplicate delivery, the
reconciler), by its buyer canceling, by a failed-payment webhook and by the sweeps (the order
or its flash-sale hold running out). Each of those is a sequence of steps on three things that
are atomic on their own: the order row, the stock hold and the payment intent. This suite runs
the real settlement code with the real stores of both stacks, one step at a time, in
interleavings drawn by hypothesis, and checks what a buyer and a brand would see afterwards:
money taken exactly when the order is paid, its unit sold exactly then, a cancel's answer that
matches the order's fate, one purchase in the room per paid order.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from checkout.app import SHOP, Shop
from checkout.records import OrderStatus
from checkout.stock import HoldState
from core import events
from core.errors import Conflict
from core.http import ACCOUNTS
from core.identity import Account
from tests.conftest import Api
from tests.shopping import buy, start_sale

_actor: contextvars.ContextVar[str | None] = contextvars.ContextVar("actor", default=None)

STOCK = 1000
FINAL = {OrderStatus.PAID, OrderStatus.CANCELED, OrderStatus.FAILED, OrderStatus.EXPIRED}


class Schedule:
    """Lets the actors run one gated call at a time; `choices` says whose turn comes next."""

    def __init__(self) -> None:
        self._parked: dict[str, asyncio.Future[None]] = {}
        self._live = 0
        self._choices: list[int] = []
        self.trace: list[str] = []

    async def gate(self) -> None:
        name = _actor.get()
        if name is None:  # setting up or checking: not part of the race
            return
        turn = asyncio.get_running_loop().create_future()
        self._parked[name] = turn
        self._next()
        await turn

    def _next(self) -> None:
        if not self._parked or len(self._parked) < self._live:
            return  # someone is still on their way to a gate
        names = sorted(self._parked)
        pick = self._choices.pop(0) if self._choices else 0
        name = names[pick % len(names)]
        self.trace.append(name)
        self._parked.pop(name).set_result(None)

    async def run(
        self, actors: dict[str, Callable[[], Awaitable[Any]]], choices: list[int]
    ) -> dict[str, Any]:
        self._choices, self.trace, self._live = list(choices), [], len(actors)

        async def one(name: str, act: Callable[[], Awaitable[Any]]) -> Any:
            _actor.set(name)
            try:
                return await act()
            except Exception as exc:  # the checks look at what came out
                return exc
            finally:
                self._live -= 1
                self._next()

        done = await asyncio.wait_for(asyncio.gather(*(one(n, a) for n, a in actors.items())), 30)
        return dict(zip(actors, done, strict=True))


class Gated:
    """Any object whose coroutine methods wait for their turn first."""

    def __init__(self, inner: Any, schedule: Schedule) -> None:
        self._inner, self._schedule = inner, schedule

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            await self._schedule.gate()
            return await attr(*args, **kwargs)

        return call


class Bank:
    """The payment provider with Stripe's rules kept: a canceled intent cannot be captured,
    a captured one cannot be canceled. Remembers what happened to every intent."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.intents: dict[str, str] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def capture(self, intent_id: str, order_id: str) -> Any:
        if self.intents.get(intent_id) == "canceled":
            raise RuntimeError("This PaymentIntent could not be captured: its status is canceled")
        self.intents[intent_id] = "captured"
        return await self._inner.capture(intent_id, order_id)

    async def cancel(self, intent_id: str, order_id: str) -> Any:
        if self.intents.get(intent_id) == "captured":
            raise RuntimeError("You cannot cancel this PaymentIntent: its status is succeeded")
        self.intents[intent_id] = "canceled"
        return await self._inner.cancel(intent_id, order_id)


class Room:
    """The rooms, counting the purchases they are told about."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.purchases = 0

    async def publish(self, room: str, kind: Any, payload: Any) -> object:
        if kind is events.PURCHASE:
            self.purchases += 1
        result: object = await self._inner.publish(room, kind, payload)
        return result


@dataclass
class Race:
    kind: str  # "sale" or "regular"
    actors: list[str]
    choices: list[int] = field(default_factory=list)


ACTORS = ["pay", "pay_again", "cancel", "fail", "expire", "lapse"]


def _races(count: int) -> list[Race]:
    races = st.builds(
        Race,
        kind=st.sampled_from(["sale", "regular"]),
        actors=st.lists(st.sampled_from(ACTORS), min_size=2, max_size=4, unique=True),
        choices=st.lists(st.integers(0, 3), max_size=30),
    )
    found: list[Race] = []

    @hypothesis.settings(max_examples=count, deadline=None, database=None, derandomize=True)
    @hypothesis.given(race=races)
    def collect(race: Race) -> None:
        if race.kind == "regular" and "lapse" in race.actors:
            race.actors.remove("lapse")  # only a flash-sale order holds units that can lapse
        found.append(race)

    collect()
    return found


def _pairs() -> list[Race]:
    """Paying against each way an order is given back, both orders of the first step."""
    return [
        Race(kind, ["pay", other], [first] * 3 + [1 - first] * 3)
        for kind in ("sale", "regular")
        for other in ("cancel", "fail", "expire", "lapse")
        for first in (0, 1)
        if not (kind == "regular" and other == "lapse")
    ]


@dataclass
class Actors:
    """Everyone who may reach one pending order, each doing what its real caller does."""

    parts: Shop
    store: Any  # the gated order store, stock and settlement of the race
    stock: Any
    who: Account
    sale_id: str
    order_id: str

    def cast(self, names: list[str]) -> dict[str, Callable[[], Awaitable[Any]]]:
        acts = {"pay": self.pay, "pay_again": self.pay, "cancel": self.cancel, "fail": self.fail}
        acts |= {"expire": functools.partial(self.give_back, OrderStatus.EXPIRED), "lapse": self.lapse}
        return {name: acts[name] for name in names}

    async def pay(self) -> Any:  # a webhook (or the reconciler): the money is held
        current = await self.store.get_order(self.order_id)
        if current.status is OrderStatus.PENDING_PAYMENT:
            return await self.parts.settlement.authorized(current)
        return current

    async def cancel(self) -> Any:  # the buyer
        try:
            return await self.parts.orders.cancel(self.who, self.order_id)
        except Conflict as exc:
            return exc.code

    async def fail(self) -> Any:  # a webhook: the payment failed
        return await self.parts.settlement.failed(await self.store.get_order(self.order_id))

    async def give_back(self, to: OrderStatus) -> Any:  # the sweep: the order ran out of time
        current = await self.store.get_order(self.order_id)
        if current.status is OrderStatus.PENDING_PAYMENT:
            return await self.parts.settlement.give_back(current, to)
        return current

    async def lapse(self) -> Any:  # the sweep: the sale's hold ran out
        await self.stock.release(self.sale_id, self.order_id)
        return await self.give_back(OrderStatus.EXPIRED)


async def test_every_interleaving_of_paying_and_giving_back_settles_once(
    shop: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = shop.client.app
    parts: Shop = app[SHOP]
    brand, host = await shop.account("brands"), await shop.account("hosts", "Mia")
    scarf = await shop.product(brand, title="Silk scarf", price=2900, stock=STOCK)
    bag = await shop.product(brand, title="Canvas bag", price=4500, stock=STOCK)
    stream = await shop.stream(host, [scarf["id"], bag["id"]])
    sale = await start_sale(shop, host, stream, scarf, quantity=STOCK, duration_s=600, per_viewer_limit=1)
    schedule = Schedule()
    store, stock = Gated(parts.orders.store, schedule), Gated(parts.stock, schedule)
    bank = Bank(parts.settlement._provider)
    room = Room(parts.settlement._rooms)
    monkeypatch.setattr(parts.settlement, "_orders", store)
    monkeypatch.setattr(parts.settlement, "_stock", stock)
    monkeypatch.setattr(parts.settlement, "_provider", Gated(bank, schedule))
    monkeypatch.setattr(parts.settlement, "_rooms", room)
    monkeypatch.setattr(parts.orders, "store", store)
    paid = {"sale": 0, "regular": 0}

    for race in _pairs() + _races(90):
        viewer = await shop.account("viewers")
        who = await app[ACCOUNTS].get_account(viewer["id"])
        assert who is not None
        product = scarf if race.kind == "sale" else bag
        status, order = await buy(shop, viewer, stream, product, key=secrets.token_hex(8))
        assert status == 201, order
        actors = Actors(parts, store, stock, who, sale["id"], order["id"])
        room.purchases = 0
        results = await schedule.run(actors.cast(race.actors), race.choices)
        final = await parts.orders.store.get_order(order["id"])
        seen = f"{race} ran as {schedule.trace}: {results}, order ended {final}"

        # nothing failed: no capture of a canceled intent, no cancel of a captured one
        assert not [r for r in results.values() if isinstance(r, Exception)], seen
        assert final is not None and final.status in FINAL, seen
        # the money is taken exactly when the order is paid; the room hears of it once
        is_paid = final.status is OrderStatus.PAID
        assert (bank.intents.get(order["payment"]["intent_id"]) == "captured") is is_paid, seen
        assert room.purchases == int(is_paid), seen
        # a payment that went through is never given back; only a lost hold expires it
        lost = final.status is OrderStatus.EXPIRED and "lapse" in race.actors
        if final.authorized_at is not None:
            assert is_paid or lost, seen
        # the buyer's cancel says what became of the order
        answer = results.get("cancel")
        if answer == "order_paid":
            assert is_paid or lost, seen
        elif answer is not None:
            assert answer.status is final.status and not is_paid, seen
        # the unit is sold exactly when paid for, and back on offer otherwise
        paid[race.kind] += int(is_paid)
        if race.kind == "sale":
            hold = await parts.stock.get_hold(sale["id"], order["id"])
            assert hold is not None, seen
            assert hold.state is (HoldState.SOLD if is_paid else HoldState.RELEASED), seen
            counts = await parts.stock.counts(sale["id"])
            assert (counts.sold, counts.held) == (paid["sale"], 0), seen
            assert counts.remaining == STOCK - paid["sale"], seen
        else:
            _, shown = await shop.call("GET", f"/api/products/{bag['id']}", expect=200)
            assert shown["stock"] == STOCK - paid["regular"], seen
    assert paid["sale"] and paid["regular"]  # the draw did reach both endings


async def test_a_cancel_racing_the_payment_over_http_agrees_with_the_order(shop: Api) -> None:
    brand, host = await shop.account("brands"), await shop.account("hosts", "Mia")
    scarf = await shop.product(brand, title="Silk scarf", price=2900, stock=40)
    stream = await shop.stream(host, [scarf["id"]])
    sale = await start_sale(shop, host, stream, scarf, quantity=20, duration_s=600)
    for _ in range(12):
        viewer = await shop.account("viewers")
        status, order = await buy(shop, viewer, stream, scarf)
        assert status == 201, order
        path = f"/api/orders/{order['id']}"
        (pay_status, paid), (cancel_status, canceled) = await asyncio.gather(
            shop.call("POST", f"{path}/demo-pay", viewer["token"]),
            shop.call("POST", f"{path}/cancel", viewer["token"]),
        )
        _, final = await shop.call("GET", path, viewer["token"], expect=200)
        if final["status"] == "paid":
            assert pay_status == 200 and paid["status"] == "paid"
            assert cancel_status == 409 and canceled["error"]["code"] == "order_paid"
        else:
            assert final["status"] == "canceled"
            assert cancel_status == 200 and canceled["status"] == "canceled"
            assert pay_status == 409 and paid["error"]["code"] == "order_canceled"
    counts = await shop.client.app[SHOP].stock.counts(sale["id"])
    assert counts.held == 0 and counts.remaining + counts.sold == 20


async def test_a_payment_claimed_then_left_unfinished_is_finished_by_the_reconciler(
    shop: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts: Shop = shop.client.app[SHOP]
    brand, host = await shop.account("brands"), await shop.account("hosts", "Mia")
    scarf = await shop.product(brand, title="Silk scarf", price=2900, stock=4)
    stream = await shop.stream(host, [scarf["id"]])
    sale = await start_sale(shop, host, stream, scarf, quantity=2, duration_s=600)
    viewer = await shop.account("viewers")
    status, order = await buy(shop, viewer, stream, scarf)
    assert status == 201, order
    # The process that learned of the payment claimed the order, then died.
    claimed = await parts.orders.store.claim(order["id"])
    assert claimed is not None and claimed.authorized_at is not None
    status, error = await shop.call("POST", f"/api/orders/{order['id']}/cancel", viewer["token"])
    assert status == 409 and error["error"]["code"] == "order_paid"  # the money is held
    assert await parts.upkeep.sweep() == 0  # and nothing expires it meanwhile
    monkeypatch.setattr("checkout.upkeep.FINISH_CLAIMED_AFTER_S", 0.0)
    assert await parts.upkeep.reconcile() == 1
    _, final = await shop.call("GET", f"/api/orders/{order['id']}", viewer["token"], expect=200)
    assert final["status"] == "paid"
    counts = await parts.stock.counts(sale["id"])
    assert (counts.sold, counts.held, counts.remaining) == (1, 0, 1)
