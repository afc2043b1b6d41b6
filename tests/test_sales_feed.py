"""`GET /api/streams/{id}/sales/ws`: a dashboard's live figures — the snapshot, then a delta per
change, across nodes over the broker; each brand only its share; the show's end freezes them.

On SQLite with in-process stock and on PostgreSQL with Redis (there with two app instances
sharing both: the dashboard on one node, the payments on the other).
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import aiohttp
import hypothesis
import pytest
from hypothesis import strategies as st

from checkout.app import SHOP
from checkout.feed import FEED_TICK_S, delta
from config.settings import Settings
from server.app import create_app
from tests.conftest import ADMIN_TOKEN, Api, MakeClient
from tests.shopping import buy, paid


class Dashboard:
    """A feed's socket, with the figures it shows: the snapshot with every delta applied."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.figures: dict[str, Any] = {}
        self.frames: list[dict[str, Any]] = []

    async def until(self, check: Any, timeout: float = 5.0) -> dict[str, Any]:
        """Read frames until `check(figures)` holds (AssertionError after `timeout`)."""
        deadline = time.monotonic() + timeout
        while not (self.figures and check(self.figures)):
            left = deadline - time.monotonic()
            assert left > 0, f"not seen in {timeout} s: {self.figures}"
            try:
                message = await self.ws.receive_json(timeout=left)
            except TimeoutError:
                continue
            self.apply(message)
        return self.figures

    def apply(self, message: dict[str, Any]) -> None:
        self.frames.append(message)
        data = message["data"]
        if message["type"] == "snapshot":
            self.figures = data
            return
        assert message["type"] == "delta" and data, message
        for key, value in data.items():
            if key == "products":
                rows = {p["product_id"]: p for p in self.figures["products"]}
                rows.update({p["product_id"]: p for p in value})
                self.figures["products"] = list(rows.values())
            elif key == "timeline":
                minutes = {m["t"]: m for m in self.figures["timeline"]}
                minutes.update({m["t"]: m for m in value})
                self.figures["timeline"] = [minutes[t] for t in sorted(minutes)]
            else:
                self.figures[key] = value


async def dashboard(api: Api, stream: dict[str, Any], token: str) -> Dashboard:
    ws = await api.client.ws_connect(f"/api/streams/{stream['id']}/sales/ws?token={token}")
    board = Dashboard(ws)
    board.apply(await ws.receive_json(timeout=5))
    assert board.frames[0]["type"] == "snapshot"
    return board


async def second_node(aiohttp_client: MakeClient, shop_settings: Settings, shop: Api) -> Api:
    """Another app on the same database and Redis (a second node), or the same one when the
    shop runs on in-process parts (nothing to share there)."""
    if shop_settings.redis_url is None:
        return shop
    return Api(await aiohttp_client(create_app(shop_settings)), brands=shop.brands)


async def test_a_purchase_reaches_the_dashboard_within_a_second_of_its_payment(
    shop: Api, aiohttp_client: MakeClient, shop_settings: Settings
) -> None:
    brand, host = await shop.account("brands", "Silk & Co"), await shop.account("hosts", "Lin")
    scarf = await shop.product(brand, title="Silk scarf", price=2900, stock=20)
    stream = await shop.stream(host, [scarf["id"]])
    board = await dashboard(shop, stream, brand["token"])
    assert (board.figures["gmv"], board.figures["orders"], board.figures["ended_at"]) == (0, 0, None)
    assert board.figures["products"][0]["remaining"] == 20

    other = await second_node(aiohttp_client, shop_settings, shop)
    ann = await other.account("viewers", "Ann")
    for n in (1, 2):
        status, order = await buy(other, ann, stream, scarf, n)
        assert status == 201, order
        await other.call("POST", f"/api/orders/{order['id']}/demo-pay", ann["token"], expect=200)
        confirmed = time.monotonic()
        figures = await board.until(lambda f, n=n: f["orders"] == n, timeout=5)
        assert time.monotonic() - confirmed < 1.0, "the purchase took over a second to show"
    assert (figures["units"], figures["gmv"], figures["buyers"]) == (3, 3 * 2900, 1)
    assert figures["products"][0]["remaining"] == 17
    assert sum(m["orders"] for m in figures["timeline"]) == 2
    # what the feed built up is what a fresh read says
    _, snapshot = await shop.call("GET", f"/api/streams/{stream['id']}/sales", brand["token"], expect=200)
    assert {k: v for k, v in snapshot.items() if "viewers" not in k and k != "conversion"} == {
        k: v for k, v in figures.items() if "viewers" not in k and k != "conversion"
    }
    # every delta carries only what changed
    assert all("stream_id" not in f["data"] for f in board.frames[1:])
    await board.ws.close()


async def test_a_brands_feed_never_carries_another_brands_product(shop: Api) -> None:
    silk, canvas = await shop.account("brands", "Silk & Co"), await shop.account("brands", "Canvas Ltd")
    host = await shop.account("hosts", "Lin")
    scarf = await shop.product(silk, title="Silk scarf", price=2900)
    tote = await shop.product(canvas, title="Canvas tote", price=3900)
    stream = await shop.stream(host, [scarf["id"], tote["id"]])
    silk_board = await dashboard(shop, stream, silk["token"])
    host_board = await dashboard(shop, stream, host["token"])
    bo = await shop.account("viewers", "Bo")
    await paid(shop, bo, stream, tote, 2)
    await host_board.until(lambda f: f["orders"] == 1)
    await paid(shop, bo, stream, scarf, 1)
    whole = await host_board.until(lambda f: f["orders"] == 2)
    assert whole["gmv"] == 2 * 3900 + 2900 and whole["buyers"] == 1
    mine = await silk_board.until(lambda f: f["orders"] == 1)
    assert (mine["gmv"], mine["units"], mine["buyers"]) == (2900, 1, 1)
    seen = str(silk_board.frames)
    assert tote["id"] not in seen and "Canvas tote" not in seen
    await silk_board.ws.close()
    await host_board.ws.close()


async def test_a_refund_comes_off_the_dashboard(shop: Api) -> None:
    brand, host = await shop.account("brands", "Silk & Co"), await shop.account("hosts", "Lin")
    scarf = await shop.product(brand, price=2900)
    stream = await shop.stream(host, [scarf["id"]])
    board = await dashboard(shop, stream, host["token"])
    ann = await shop.account("viewers", "Ann")
    order = await paid(shop, ann, stream, scarf, 1)
    await board.until(lambda f: f["orders"] == 1)
    await shop.call("POST", f"/api/orders/{order}/refund", ADMIN_TOKEN, expect=200)
    figures = await board.until(lambda f: f["orders"] == 0)
    assert (figures["gmv"], figures["buyers"]) == (0, 0)
    assert [m["orders"] for m in figures["timeline"]] == [0]  # the minute is there, emptied
    await board.ws.close()


async def test_the_shows_end_freezes_its_report_and_reaches_the_dashboard(shop: Api) -> None:
    brand, host = await shop.account("brands", "Silk & Co"), await shop.account("hosts", "Lin")
    scarf = await shop.product(brand, price=2900, stock=5)
    stream = await shop.stream(host, [scarf["id"]])
    # a viewer in the room, so the show has an audience to freeze
    ann = await shop.account("viewers", "Ann")
    room = await shop.client.ws_connect(f"/api/streams/{stream['id']}/ws?token={ann['token']}")
    board = await dashboard(shop, stream, brand["token"])
    await board.until(
        lambda f: (f["viewers_now"], f["viewers_peak"], f["viewers_unique"]) == (1, 1, 1), timeout=8
    )
    await paid(shop, ann, stream, scarf, 2)
    await shop.call("POST", f"/api/streams/{stream['id']}/end", host["token"], expect=200)
    ended = await board.until(lambda f: f["ended_at"] is not None)
    await room.close()
    assert (ended["orders"], ended["conversion"], ended["products"][0]["remaining"]) == (1, 1.0, 3)
    assert ended["viewers_now"] == 0  # nobody watches a show that is over

    path = f"/api/streams/{stream['id']}/sales"
    _, report = await shop.call("GET", path, brand["token"], expect=200)
    assert report["ended_at"] == pytest.approx(ended["ended_at"])
    assert (report["viewers_peak"], report["viewers_unique"], report["conversion"]) == (1, 1, 1.0)
    # the frozen stock stays as the show left it, whatever the product does afterwards
    await shop.call("PATCH", f"/api/products/{scarf['id']}", brand["token"], {"stock": 40}, expect=200)
    _, later = await shop.call("GET", path, brand["token"], expect=200)
    assert later["products"][0]["remaining"] == 3 and later == report
    await board.ws.close()


async def test_refusals_come_before_the_upgrade(shop: Api) -> None:
    brand, host = await shop.account("brands", "Silk & Co"), await shop.account("hosts", "Lin")
    stranger, viewer = await shop.account("brands", "Other"), await shop.account("viewers", "Vi")
    scarf = await shop.product(brand)
    stream = await shop.stream(host, [scarf["id"]])
    path = f"/api/streams/{stream['id']}/sales/ws"
    for token, status, code in (
        (None, 401, "unauthorized"),
        ("nope", 401, "invalid_token"),
        (viewer["token"], 403, "forbidden"),
        (stranger["token"], 403, "forbidden"),
    ):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await shop.client.ws_connect(path + (f"?token={token}" if token else ""))
        assert refused.value.status == status, code
        _, body = await shop.call("GET", path, token)  # the same refusal, readable over plain HTTP
        assert body["error"]["code"] in (code, "websocket_required")
    with pytest.raises(aiohttp.WSServerHandshakeError) as missing:
        await shop.client.ws_connect(f"/api/streams/str_nope/sales/ws?token={host['token']}")
    assert missing.value.status == 404
    _, plain = await shop.call("GET", path, host["token"], expect=400)
    assert plain["error"]["code"] == "websocket_required"


async def test_many_dashboards_cost_one_read_per_change(shop: Api) -> None:
    """Sockets that see the same thing share their reads: 30 dashboards of one brand, a burst of
    payments, and the node reads the figures at most once per feed tick (one group), not once per
    socket or per order, however long the burst takes on a busy machine."""
    brand, host = await shop.account("brands", "Silk & Co"), await shop.account("hosts", "Lin")
    scarf = await shop.product(brand, price=2900, stock=100)
    stream = await shop.stream(host, [scarf["id"]])
    boards = [await dashboard(shop, stream, brand["token"]) for _ in range(30)]
    feed = shop.client.app[SHOP].feed
    viewers = [await shop.account("viewers", f"V{i}") for i in range(10)]
    reads, started = feed.reads, time.monotonic()
    await asyncio.gather(*(paid(shop, v, stream, scarf, 1) for v in viewers))
    for board in boards:
        await board.until(lambda f: f["orders"] == 10)
    ticks = (time.monotonic() - started) / FEED_TICK_S
    assert 1 <= feed.reads - reads <= ticks + 2, (feed.reads - reads, ticks)
    for board in boards:
        await board.ws.close()


_minutes = st.dictionaries(
    st.sampled_from([60.0 * m for m in range(6)]),
    st.tuples(st.integers(0, 5), st.integers(0, 9999)),
    max_size=6,
)
_products = st.dictionaries(
    st.sampled_from(["prd_a", "prd_b", "prd_c"]), st.tuples(st.integers(0, 5), st.integers(0, 20)), min_size=1
)


def _figures(products: dict[str, tuple[int, int]], minutes: dict[float, tuple[int, int]], ended: bool) -> Any:
    return {
        "stream_id": "str_1",
        "orders": sum(o for o, _ in products.values()),
        "gmv": sum(g for _, g in minutes.values()),
        "ended_at": 1.0 if ended else None,
        "products": [
            {"product_id": p, "orders": o, "remaining": r} for p, (o, r) in sorted(products.items())
        ],
        "timeline": [{"t": t, "orders": o, "gmv": g} for t, (o, g) in sorted(minutes.items()) if o],
    }


@hypothesis.settings(max_examples=300, deadline=None, database=None, derandomize=True)
@hypothesis.given(_products, _minutes, st.booleans(), _minutes, st.booleans())
def test_a_delta_takes_a_dashboard_from_what_it_showed_to_what_is(
    products: dict[str, tuple[int, int]],
    before: dict[float, tuple[int, int]],
    ended_before: bool,
    after: dict[float, tuple[int, int]],
    ended_after: bool,
) -> None:
    old = _figures(products, before, ended_before)
    new = _figures({p: (o + 1, r) for p, (o, r) in products.items()}, after, ended_after)
    board = Dashboard(None)  # type: ignore[arg-type]
    board.apply({"type": "snapshot", "data": copy.deepcopy(old)})
    change = delta(old, new)
    if change:
        board.apply({"type": "delta", "data": change})
    shown = board.figures
    # minutes that emptied stay on the chart at zero; everything else is exactly the new figures
    assert [m for m in shown["timeline"] if m["orders"]] == new["timeline"]
    assert {k: v for k, v in shown.items() if k != "timeline"} == {
        k: v for k, v in new.items() if k != "timeline"
    }
    assert "stream_id" not in change and all(p in new["products"] for p in change.get("products", []))
