"""The pages in a real browser: a host goes live from the studio, viewers watch, chat and buy.

Debian's Chromium (fake camera and microphone) against a `livecart serve` process on
127.0.0.1, everything on loopback (tests/browser.py). What a test asserts is what a person
would see: the picture playing, the words on the page, the order paid in the server.
"""

from __future__ import annotations

import contextlib
import json
import signal
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Page

from tests.browser import Pages, browser, nominated_pair, pages, unlabelled, until
from tests.conftest import ADMIN_TOKEN
from tests.procs import ServerProcess, start_node

__all__ = ["browser", "pages"]  # the fixtures

pytestmark = pytest.mark.timeout(180)

MARKUP = '<img src=x onerror="window.pwned=1">'


@dataclass
class Show:
    server: ServerProcess
    http: aiohttp.ClientSession
    host: dict[str, Any]
    brand: dict[str, Any]
    products: list[dict[str, Any]]
    stream: dict[str, Any]

    @property
    def base(self) -> str:
        return self.server.url

    @property
    def studio(self) -> str:
        return f"{self.base}/studio/{self.stream['id']}"

    @property
    def watch(self) -> str:
        return f"{self.base}/watch/{self.stream['id']}"

    async def call(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, f"{self.base}{path}", json=body, headers=headers) as response:
            return response.status, await response.json(content_type=None)

    async def current(self) -> dict[str, Any]:
        status, stream = await self.call("GET", f"/api/streams/{self.stream['id']}")
        assert status == 200
        return dict(stream)


@contextlib.contextmanager
def page_server(tmp_path: Path, **env: str) -> Iterator[ServerProcess]:
    """`livecart serve` as the page tests run it: WebRTC on 127.0.0.1 only, a host's dropped
    session kept live 20 s, `env` on top; killed on the way out."""
    node = start_node(
        tmp_path,
        LIVECART_DATA_DIR=str(tmp_path / "data"),
        LIVECART_ADMIN_TOKEN=ADMIN_TOKEN,
        LIVECART_ICE_ADDRESSES="127.0.0.1",
        LIVECART_PUBLISHER_GRACE_S="20",
        LIVECART_LOG_LEVEL="warning",
        **env,
    )
    try:
        yield node
    finally:
        node.kill()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with page_server(tmp_path) as node:
        yield node


@pytest.fixture
async def show(server: ServerProcess) -> AsyncIterator[Show]:
    async with aiohttp.ClientSession() as http:
        partial = Show(server, http, {}, {}, [], {})
        _, partial.host = await partial.call("POST", "/api/hosts", ADMIN_TOKEN, {"name": "Lin"})
        _, partial.brand = await partial.call("POST", "/api/brands", ADMIN_TOKEN, {"name": "Silk & Co"})
        for title, price, stock in (("Silk scarf", 2900, 50), ("Canvas tote", 3900, 8)):
            status, product = await partial.call(
                "POST",
                "/api/products",
                partial.brand["token"],
                {"title": title, "price": price, "currency": "USD", "stock": stock},
            )
            assert status == 201, product
            partial.products.append(product)
        status, grant = await partial.call(
            "POST", f"/api/brands/me/hosts/{partial.host['id']}", partial.brand["token"], {}
        )
        assert status == 201, grant
        status, partial.stream = await partial.call(
            "POST",
            "/api/streams",
            partial.host["token"],
            {"title": "Spring scarves", "products": [p["id"] for p in partial.products]},
        )
        assert status == 201, partial.stream
        yield partial


# -- helpers a test reads like a person's steps -------------------------------------------------
async def open_studio(pages: Pages, show: Show) -> Page:
    studio = await pages.open(show.studio, label="studio")
    await studio.fill("#token-input", show.host["token"])
    await studio.click("#gate button[type=submit]")
    await until(studio, "!document.querySelector('#studio').hidden", what="the studio opening")
    await until(studio, "document.querySelector('#preview').videoWidth > 0", what="the camera preview")
    return studio


async def go_live(studio: Page) -> None:
    await studio.click("#go-live")
    await until(studio, "document.querySelector('#state-badge').dataset.state === 'live'", what="going live")


async def playing(watch: Page, after: float = 1.0) -> None:
    """The viewer's video has a picture and its clock moved past `after` seconds."""
    await until(
        watch,
        "(() => { const v = document.querySelector('#video');"
        f" return v.videoWidth > 0 && v.currentTime > {after}; }})()",
        what="the video playing",
    )


async def join_as(watch: Page, name: str) -> None:
    await until(watch, "!document.querySelector('#sheet').hidden", what="the name sheet")
    await watch.fill("#viewer-name", name)
    await watch.click("#sheet button[type=submit]")
    await until(
        watch, "window.e2e.room.state === 'open' && window.e2e.room.token", what="the socket with a name"
    )


async def say(watch: Page, text: str) -> None:
    await watch.fill("#chat-input", text)
    await watch.press("#chat-input", "Enter")


async def focus_on(page: Page, element_id: str) -> None:
    await until(
        page,
        f"document.activeElement && document.activeElement.id === '{element_id}'",
        what=f"focus on #{element_id}",
    )


async def buy(watch: Page, name: str | None, quantity: int, *, limit_reached: bool = False) -> None:
    """Buy from the card (or the sheet already open) with the demo provider, until paid."""
    if not await watch.evaluate("!!document.querySelector('#place')"):
        await watch.click("#buy")
        if name is not None:
            await join_as(watch, name)
    for _ in range(quantity - 1):
        await watch.click("#qty-more")
    assert await watch.inner_text("#quantity") == str(quantity)
    if limit_reached:
        assert await watch.is_disabled("#qty-more"), "the stepper stops at the per-viewer limit"
    await watch.click("#place")
    await until(watch, "document.querySelector('#confirm-pay')", what="the pay step")
    await watch.click("#confirm-pay")
    await until(watch, "document.querySelector('#order-state[data-status=paid]')", what="the paid order")
    await watch.click("#sheet .pay")  # Keep watching


def state_message(page: Page) -> Any:
    return page.evaluate(
        "(() => { const m = document.querySelector('#state-msg'); return m.hidden ? '' : m.textContent; })()"
    )


async def inbound(page: Page) -> dict[str, int]:
    stats: dict[str, int] = await page.evaluate(
        """(async () => {
          const out = {framesDecoded: 0, audioPackets: 0};
          (await window.e2e.player.pc.getStats()).forEach((s) => {
            if (s.type === 'inbound-rtp' && s.kind === 'video') out.framesDecoded = s.framesDecoded || 0;
            if (s.type === 'inbound-rtp' && s.kind === 'audio') out.audioPackets = s.packetsReceived || 0;
          });
          return out;
        })()"""
    )
    return stats


# -- the tests ----------------------------------------------------------------------------------
async def test_host_goes_live_and_a_phone_viewer_watches_chats_hearts_and_buys(
    pages: Pages, show: Show
) -> None:
    studio = await open_studio(pages, show)
    await pages.shot(studio, "studio-preview-desktop")
    await go_live(studio)
    assert (await show.current())["state"] == "live"
    assert await nominated_pair(studio, "publisher") == {"local": "127.0.0.1", "remote": "127.0.0.1"}

    watch = await pages.open(show.watch, phone=True, label="watch")
    await playing(watch)
    # the viewer sees the host's camera in its shape (the browser's encoder may start it smaller
    # while it measures the bandwidth), and hears its microphone
    width, height = await studio.evaluate(
        "[document.querySelector('#preview').videoWidth, document.querySelector('#preview').videoHeight]"
    )
    seen_w, seen_h = await watch.evaluate(
        "[document.querySelector('#video').videoWidth, document.querySelector('#video').videoHeight]"
    )
    assert seen_w >= 320 and abs(seen_w / seen_h - width / height) < 0.02, (seen_w, seen_h, width, height)
    await until(
        watch,
        "window.e2e.player.pc.getStats().then((all) => [...all.values()].some("
        "(s) => s.type === 'inbound-rtp' && s.kind === 'audio' && s.packetsReceived > 0))",
        what="audio packets",
    )
    stats = await inbound(watch)
    assert stats["framesDecoded"] > 10, stats
    assert await nominated_pair(watch, "player") == {"local": "127.0.0.1", "remote": "127.0.0.1"}
    assert await watch.is_visible("#unmute"), "sound starts muted with a clear way to turn it on"
    await watch.click("#unmute")
    assert await watch.evaluate("document.querySelector('#video').muted") is False
    assert not await watch.is_visible("#unmute")
    assert "Lin" in await watch.inner_text(".host-chip")
    assert await watch.inner_text("#badge") == "LIVE"

    # the host pins a product: the viewer's card appears with its price
    await studio.click(f"#lineup li[data-product='{show.products[0]['id']}'] button")
    await until(watch, "!document.querySelector('#product').hidden", what="the pinned card")
    assert "Silk scarf" in await watch.inner_text("#product")
    assert "$29.00" in await watch.inner_text("#product")

    # markup in chat stays text everywhere
    await studio.fill("#chat-input", f"Welcome! {MARKUP}")
    await studio.press("#chat-input", "Enter")
    await until(
        watch, "document.querySelector('#chat').textContent.includes('Welcome!')", what="the host's line"
    )
    assert MARKUP in await watch.inner_text("#chat")
    assert await watch.evaluate("document.querySelectorAll('#chat img').length") == 0

    # an anonymous viewer picks a name the first time they chat; the line reaches the host
    await say(watch, "Is the scarf silk on both sides?")
    await join_as(watch, "Mia")
    await until(
        studio,
        "document.querySelector('#chat').textContent.includes('silk on both sides')",
        what="the line at the host",
    )
    assert "Mia" in await studio.inner_text("#chat")

    # hearts float on the viewer's page and add up at the host
    for _ in range(3):
        await watch.click("#heart")
    await until(
        studio, "Number(document.querySelector('#fig-hearts').textContent) >= 3", what="hearts at the host"
    )
    await until(
        studio, "Number(document.querySelector('#fig-viewers').textContent) >= 1", what="the viewer count"
    )

    # Buy → quantity 2 → demo pay → confirmed, and the server has the paid order
    await watch.click("#buy")
    await watch.click("#sheet [aria-label='One more']")
    assert await watch.inner_text("#quantity") == "2"
    assert "$58.00" in await watch.inner_text("#total")
    await pages.shot(watch, "watch-buy-sheet-phone")
    await watch.click("#place")
    await until(watch, "document.querySelector('#confirm-pay')", what="the pay step")
    assert "Demo payment" in await watch.inner_text("#sheet")
    await watch.click("#confirm-pay")
    await until(watch, "document.querySelector('#order-state[data-status=paid]')", what="the paid order")
    assert "Order confirmed" in await watch.inner_text("#order-state")
    await until(
        studio,
        "document.querySelector('#chat').textContent.includes('Mia bought 2')",
        what="the purchase at the host",
    )
    scarf = show.products[0]["id"]
    await until(
        studio,
        f"document.querySelector(\"#lineup li[data-product='{scarf}']\").textContent.includes('48 in stock')",
        what="the stock lowered at the host",
    )
    await until(watch, "!document.querySelector('#ticker').hidden", what="the ticker")
    assert "Mia just bought 2 \N{MULTIPLICATION SIGN} Silk scarf" in await watch.inner_text("#ticker")
    await pages.shot(watch, "watch-paid-phone")
    await watch.click("#sheet .pay")
    await pages.shot(watch, "watch-live-phone")
    await pages.shot(studio, "studio-live-desktop")

    # the phone page fits the screen: nothing to scroll, Buy and chat within thumb reach
    fits = await watch.evaluate(
        """(() => { const b = document.querySelector('#buy').getBoundingClientRect();
            const c = document.querySelector('#chat-input').getBoundingClientRect();
            return document.scrollingElement.scrollHeight <= innerHeight && b.bottom <= innerHeight
              && c.bottom <= innerHeight && b.height >= 44; })()"""
    )
    assert fits
    assert await watch.evaluate("window.pwned") is None
    assert await unlabelled(watch) == [] and await unlabelled(studio) == []
    await pages.check(studio, watch)


async def test_flash_sale_from_the_studio_counts_down_and_sells_out_on_the_watch_page(
    pages: Pages, show: Show
) -> None:
    tote = show.products[1]
    studio = await open_studio(pages, show)
    await go_live(studio)
    watch = await pages.open(show.watch, phone=True, label="watch")
    await playing(watch, after=0.2)

    await studio.select_option("#sale-product", tote["id"])
    await studio.fill("#sale-price", "19.50")
    await studio.fill("#sale-quantity", "3")
    await studio.fill("#sale-minutes", "3")
    await studio.fill("#sale-limit", "2")
    await studio.click("#sale-form button[type=submit]")
    await until(studio, "!document.querySelector('#running-sale').hidden", what="the running sale")
    assert "3 of 3 left" in await studio.inner_text("#running-sale")

    # a sale of a product that is not pinned still shows on the viewer's card
    await until(
        watch, "document.querySelector('#product').textContent.includes('Canvas tote')", what="the sale card"
    )
    card = await watch.inner_text("#product")
    assert "$19.50" in card and "$39.00" in card and "3 left" in card and "Flash sale" in card
    countdown = await until(watch, "document.querySelector('#countdown').textContent", what="the countdown")
    assert countdown.startswith("ends in 02:") or countdown == "ends in 03:00", countdown
    await pages.shot(watch, "watch-flash-sale-phone")

    # Noor buys two (the per-viewer limit): both pages show one left
    await buy(watch, "Noor", 2, limit_reached=True)
    await until(watch, "document.querySelector('#left').textContent === '1 left'", what="1 left on the card")
    await until(
        studio,
        "document.querySelector('#sale-left').textContent === '1 of 3 left'",
        what="1 left at the host",
    )

    # Ivy and Zoe both open the sheet for the last unit; Ivy pays first
    ivy = await pages.open(show.watch, phone=True, label="ivy")
    zoe = await pages.open(show.watch, phone=True, label="zoe")
    for phone, name in ((ivy, "Ivy"), (zoe, "Zoe")):
        await until(phone, "document.querySelector('#buy')", what="the card")
        await phone.click("#buy")
        await join_as(phone, name)
        await until(phone, "document.querySelector('#place').textContent === 'Pay $19.50'", what="the sheet")
    await buy(ivy, None, 1)
    for phone in (watch, ivy):
        await until(
            phone,
            "(b => b.disabled && b.textContent === 'Sold out')(document.querySelector('#buy'))",
            what="sold out on the card",
        )
    await pages.shot(watch, "watch-sold-out-phone")
    await until(
        studio,
        "document.querySelector('#sale-left').textContent === 'sold out, 3 of 3'",
        what="sold out at the host",
    )

    # Zoe's open sheet no longer offers the sale price: what Pay says is what an order costs now
    await until(
        zoe, "document.querySelector('#place').textContent === 'Pay $39.00'", what="the sheet's price"
    )
    assert "$19.50" not in await zoe.inner_text("#sheet")
    await pages.check(studio, watch, ivy, zoe)


async def test_host_moderates_chat_live_on_every_viewer_page(pages: Pages, show: Show) -> None:
    studio = await open_studio(pages, show)
    watch = await pages.open(show.watch, phone=True, label="watch")
    await until(watch, "window.e2e.room && window.e2e.room.state === 'open'", what="the room")
    assert "Starts soon" in await state_message(watch)
    await say(watch, "first!")
    await join_as(watch, "Sam")
    await say(watch, "buy my stuff at spam.example")
    await until(
        studio, "document.querySelectorAll('#chat li[data-id]').length >= 2", what="both lines at the host"
    )

    spam = studio.locator("#chat li[data-id]", has_text="spam.example")
    await spam.hover()
    await spam.get_by_role("button", name="Delete Sam's message").click()
    await until(
        watch, "!document.querySelector('#chat').textContent.includes('spam.example')", what="the deletion"
    )
    assert "first!" in await watch.inner_text("#chat")

    await (
        studio.locator("#chat li[data-id]", has_text="first!")
        .get_by_role("button", name="Mute Sam for 10 minutes")
        .click()
    )
    await until(
        watch, "document.querySelector('#chat').textContent.includes('muted you')", what="the mute notice"
    )
    await say(watch, "still here?")
    await until(watch, "document.querySelector('#chat').textContent.includes('muted')", what="the refusal")
    assert "still here?" not in await studio.inner_text("#chat")
    await pages.check(studio, watch)


async def test_watch_page_follows_the_show_from_soon_to_live_to_ended_without_a_reload(
    pages: Pages, show: Show
) -> None:
    watch = await pages.open(show.watch, phone=True, label="watch")
    # a viewer session this server does not know (kept from another server) is dropped quietly
    await watch.evaluate(
        "localStorage.setItem('livecart.viewer', JSON.stringify({id: 'x', name: 'Old', token: 'lc_gone'}))"
    )
    await watch.reload(wait_until="domcontentloaded")
    await until(watch, "window.e2e.room && window.e2e.room.state === 'open'", what="the room")
    assert await watch.evaluate("localStorage.getItem('livecart.viewer')") is None
    assert "Starts soon" in await state_message(watch)
    await pages.shot(watch, "watch-starts-soon-phone")

    studio = await open_studio(pages, show)
    await go_live(studio)
    await playing(watch, after=0.5)
    assert await state_message(watch) == ""
    assert await watch.inner_text("#badge") == "LIVE"

    await studio.click("#end")
    await studio.click("#confirm-end-yes")
    await until(
        studio, "document.querySelector('#state-badge').dataset.state === 'ended'", what="ended at the host"
    )
    await until(
        watch,
        "document.querySelector('#state-msg').textContent.includes('ended')",
        what="ended at the viewer",
    )
    assert (await show.current())["state"] == "ended"
    assert await watch.evaluate("document.querySelector('#video').srcObject") is None
    await pages.shot(watch, "watch-ended-phone")
    # the one refusal the browser logs: the old viewer session asked about
    await pages.check(studio, watch, expected=r"status of 401")


async def test_a_server_restart_is_survived_by_the_studio_and_the_watch_page(
    pages: Pages, show: Show, tmp_path: Path
) -> None:
    studio = await open_studio(pages, show)
    await go_live(studio)
    watch = await pages.open(show.watch, phone=True, label="watch")
    await playing(watch, after=0.5)
    await say(watch, "before")
    await join_as(watch, "Ana")
    await until(
        studio, "document.querySelector('#chat').textContent.includes('before')", what="the first line"
    )

    show.server.stop(signal.SIGTERM)
    await until(watch, "window.e2e.room.state === 'reconnecting'", what="the viewer noticing")
    assert (
        "Reconnecting" in await state_message(watch)
        or await watch.evaluate("window.e2e.player.state") != "live"
    )
    show.server.start(tmp_path)

    # both pages come back by themselves: the socket (with `since`), the host's WHIP session,
    # the viewer's WHEP session; and chat flows again
    await until(watch, "window.e2e.room.state === 'open'", what="the viewer's socket back")
    await until(studio, "window.e2e.room.state === 'open'", what="the host's socket back")
    await until(
        studio,
        "window.e2e.publisher && window.e2e.publisher.state === 'live'",
        40_000,
        what="the host publishing again",
    )
    await until(
        watch,
        "window.e2e.player && window.e2e.player.state === 'live'"
        " && document.querySelector('#video').videoWidth > 0",
        40_000,
        what="the viewer's video back",
    )
    before = await watch.evaluate("document.querySelector('#video').currentTime")
    await until(
        watch, f"document.querySelector('#video').currentTime > {before} + 0.5", what="the picture moving"
    )
    await say(watch, "after")
    await until(
        studio,
        "document.querySelector('#chat').textContent.includes('after')",
        what="a line after the restart",
    )
    # while the server was down, the browser logged the sockets it could not open
    await pages.check(studio, watch, expected=r"WebSocket connection to .* failed: .*ERR_CONNECTION_REFUSED")


async def test_index_lists_live_shows_first_with_host_pinned_product_and_viewers(
    pages: Pages, show: Show
) -> None:
    _, later = await show.call(
        "POST", "/api/streams", show.host["token"], {"title": "Tomorrow's totes", "products": []}
    )
    _, over = await show.call(
        "POST", "/api/streams", show.host["token"], {"title": f"Yesterday {MARKUP}", "products": []}
    )
    await show.call("POST", f"/api/streams/{over['id']}/end", show.host["token"])
    studio = await open_studio(pages, show)
    await go_live(studio)
    await studio.click(f"#lineup li[data-product='{show.products[0]['id']}'] button")
    watch = await pages.open(show.watch, phone=True, label="watch")
    await until(watch, "window.e2e.room.state === 'open'", what="a viewer")

    index = await pages.open(f"{show.base}/", label="index")
    await until(index, "document.querySelectorAll('.show').length === 3", what="three shows")
    titles = await index.eval_on_selector_all(".show .title", "(nodes) => nodes.map((n) => n.textContent)")
    assert titles == ["Spring scarves", "Tomorrow's totes", f"Yesterday {MARKUP}"]
    live = await index.inner_text(f".show[data-stream='{show.stream['id']}']")
    assert "LIVE" in live and "Lin" in live and "Silk scarf" in live and "$29.00" in live
    await until(
        index,
        f"document.querySelector(\".show[data-stream='{show.stream['id']}'] [aria-label$='watching']\")",
        what="the viewer count",
    )
    await pages.shot(index, "index-desktop")
    await index.click(f".show[data-stream='{later['id']}']")
    await until(index, "location.pathname.startsWith('/watch/')", what="the watch page")
    assert await index.evaluate("window.pwned") is None
    await pages.check(studio, watch)


async def test_studio_refuses_a_token_that_is_not_the_hosts(pages: Pages, show: Show) -> None:
    studio = await pages.open(show.studio, label="studio")
    await studio.fill("#token-input", show.brand["token"])
    await studio.click("#gate button[type=submit]")
    await until(studio, "!document.querySelector('#gate-error').hidden", what="the refusal")
    assert "not to this stream's host" in await studio.inner_text("#gate-error")
    await studio.fill("#token-input", "lc_not_a_token")
    await studio.click("#gate button[type=submit]")
    await until(
        studio,
        "document.querySelector('#gate-error').textContent.includes('not accepted')",
        what="the refusal",
    )
    assert await studio.evaluate("localStorage.getItem('livecart.host')") is None
    assert not await studio.evaluate("location.href.includes('lc_')"), "a token never goes into a link"
    await pages.shot(studio, "studio-gate-desktop")


def test_pages_are_served_with_a_script_policy_and_unknown_streams_say_so(server: ServerProcess) -> None:
    for path in ("/", "/studio/str_nope", "/watch/str_nope"):
        with urllib.request.urlopen(f"{server.url}{path}") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/html")
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    with urllib.request.urlopen(f"{server.url}/api/openapi.json") as response:
        paths = json.load(response)["paths"]
    assert {"/studio/{stream_id}", "/watch/{stream_id}"} <= set(paths)


async def test_a_viewer_can_buy_with_the_keyboard_alone(pages: Pages, show: Show) -> None:
    await show.call(
        "POST",
        f"/api/streams/{show.stream['id']}/pin",
        show.host["token"],
        {"product_id": show.products[1]["id"]},
    )
    watch = await pages.open(show.watch, label="watch")  # a desktop browser, no mouse used
    await until(watch, "document.querySelector('#buy')", what="the pinned card")
    await pages.shot(watch, "watch-desktop")
    for _ in range(20):  # Tab through the page until Buy has the focus
        if await watch.evaluate("document.activeElement && document.activeElement.id === 'buy'"):
            break
        await watch.keyboard.press("Tab")
    assert await watch.evaluate("document.activeElement.id") == "buy", "Buy is reachable with Tab"
    await watch.keyboard.press("Enter")
    await focus_on(watch, "viewer-name")
    await watch.keyboard.type("Kai")
    await watch.keyboard.press("Enter")
    await focus_on(watch, "place")
    await watch.keyboard.press("Enter")
    await focus_on(watch, "confirm-pay")
    await watch.keyboard.press("Enter")
    await until(watch, "document.querySelector('#order-state[data-status=paid]')", what="the paid order")
    await watch.keyboard.press("Escape")
    await focus_on(watch, "buy")
    assert await watch.evaluate("document.querySelector('#sheet').hidden")
    # the card re-renders when the room says something about it (the stock here, then a pin
    # from the host): a keyboard user's focus stays on Buy
    await until(watch, "document.querySelector('#left').textContent === '7 left'", what="the stock")
    await watch.evaluate("document.querySelector('#buy').dataset.old = '1'")
    await show.call(
        "POST",
        f"/api/streams/{show.stream['id']}/pin",
        show.host["token"],
        {"product_id": show.products[1]["id"]},
    )
    await until(watch, "!document.querySelector('#buy').dataset.old", what="the card re-rendered")
    assert await watch.evaluate("document.activeElement.id") == "buy"
    assert await unlabelled(watch) == []
    await pages.check(watch)


async def test_a_dropped_socket_comes_back_with_since_and_shows_what_was_missed(
    pages: Pages, show: Show
) -> None:
    studio = await open_studio(pages, show)
    watch = await pages.open(show.watch, phone=True, label="watch")
    await until(watch, "window.e2e.room && window.e2e.room.state === 'open'", what="the room")
    await studio.fill("#chat-input", "hello early birds")
    await studio.press("#chat-input", "Enter")
    await until(
        watch, "document.querySelector('#chat').textContent.includes('early birds')", what="the first line"
    )

    # the phone loses its socket; meanwhile the host talks and pins a product
    await watch.evaluate("window.e2e.room.stop()")
    await studio.fill("#chat-input", "you missed this one")
    await studio.press("#chat-input", "Enter")
    await studio.click(f"#lineup li[data-product='{show.products[1]['id']}'] button")
    await until(studio, "document.querySelector('#lineup li.is-pinned')", what="the pin at the host")
    assert "since=" in await watch.evaluate("window.e2e.room.url()")
    await watch.evaluate("window.e2e.room.connect()")
    await until(
        watch,
        "document.querySelector('#chat').textContent.includes('you missed this one')",
        what="the missed line",
    )
    await until(
        watch, "document.querySelector('#product').textContent.includes('Canvas tote')", what="the missed pin"
    )
    lines = await watch.eval_on_selector_all("#chat li", "(nodes) => nodes.map((n) => n.textContent)")
    assert sum("early birds" in line for line in lines) == 1, lines  # nothing shown twice
    await pages.check(studio, watch)


async def test_a_host_who_reloads_the_studio_resumes_and_viewers_keep_watching(
    pages: Pages, show: Show
) -> None:
    studio = await open_studio(pages, show)
    await go_live(studio)
    watch = await pages.open(show.watch, phone=True, label="watch")
    await playing(watch, after=0.5)

    await studio.reload(wait_until="domcontentloaded")  # the token is kept: no gate this time
    await until(studio, "!document.querySelector('#studio').hidden", what="the studio again")
    await until(studio, "document.querySelector('#preview').videoWidth > 0", what="the preview again")
    assert (await show.current())["state"] == "live", "a reload does not end the show"
    assert await studio.inner_text("#go-live") == "Publish from this browser"
    await go_live(studio)
    before = await watch.evaluate("document.querySelector('#video').currentTime")
    await until(
        watch,
        f"document.querySelector('#video').currentTime > {before} + 1 && window.e2e.player.state === 'live'",
        30_000,
        what="the viewer's picture moving again",
    )
    await pages.check(studio, watch)
