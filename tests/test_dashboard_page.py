"""The sales dashboard in a real browser: a brand opens it with its token once and watches a
purchase raise its figures without a reload; another brand sees only its own products, a brand
with none in the show and a wrong token are told so in words, the host sees the whole show.

Debian's Chromium against a `livecart serve` process on 127.0.0.1 (tests/browser.py); purchases
are made through the API as a viewer's phone would make them, and every wait is bounded.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Page

from tests.browser import Pages, browser, pages, unlabelled, until
from tests.conftest import ADMIN_TOKEN
from tests.procs import ServerProcess
from tests.test_pages import Show, go_live, open_studio, server

__all__ = ["browser", "pages", "server"]  # the fixtures

pytestmark = pytest.mark.timeout(180)


@dataclass
class Shop(Show):
    """A show with two brands' products in it, and a brand whose products are not in it."""

    second: dict[str, Any] = field(default_factory=dict)
    stranger: dict[str, Any] = field(default_factory=dict)
    tint: dict[str, Any] = field(default_factory=dict)  # the second brand's product

    @property
    def dashboard(self) -> str:
        return f"{self.base}/dashboard/{self.stream['id']}"

    async def account(self, kind: str, name: str) -> dict[str, Any]:
        status, account = await self.call("POST", f"/api/{kind}", ADMIN_TOKEN, {"name": name})
        assert status == 201, account
        return dict(account)

    async def product(
        self, brand: dict[str, Any], title: str, price: int, stock: int, picture: str = "tote.svg"
    ) -> dict[str, Any]:
        image = f"{self.base}/static/demo/{picture}"
        body = {"title": title, "price": price, "currency": "USD", "stock": stock, "image_url": image}
        status, product = await self.call("POST", "/api/products", brand["token"], body)
        assert status == 201, product
        return dict(product)

    async def purchase(self, product: dict[str, Any], quantity: int, name: str) -> None:
        """A viewer named `name` buys `quantity` of `product` and pays (demo provider)."""
        _, viewer = await self.call("POST", "/api/viewers", None, {"name": name})
        body = {"stream_id": self.stream["id"], "product_id": product["id"], "quantity": quantity}
        headers = {"Authorization": f"Bearer {viewer['token']}", "Idempotency-Key": secrets.token_hex(8)}
        async with self.http.post(f"{self.base}/api/orders", json=body, headers=headers) as response:
            order = await response.json()
            assert response.status == 201, order
        status, paid = await self.call("POST", f"/api/orders/{order['id']}/demo-pay", viewer["token"])
        assert status == 200, paid


@pytest.fixture
async def shop(server: ServerProcess) -> AsyncIterator[Shop]:
    async with aiohttp.ClientSession() as http:
        shop = Shop(server, http, {}, {}, [], {})
        shop.host = await shop.account("hosts", "Lin")
        shop.brand = await shop.account("brands", "Silk & Co")
        shop.second = await shop.account("brands", "Rosé Beauty")
        shop.stranger = await shop.account("brands", "Other Co")
        shop.products = [
            await shop.product(shop.brand, "Silk scarf", 2900, 50, "scarf.svg"),
            await shop.product(shop.brand, "Canvas tote", 3900, 8, "tote.svg"),
        ]
        shop.tint = await shop.product(shop.second, "Rose lip tint", 1800, 40, "lip-tint.svg")
        await shop.product(shop.stranger, "Wool hat", 1900, 5)
        for brand in (shop.brand, shop.second):
            grants = f"/api/brands/me/hosts/{shop.host['id']}"
            status, grant = await shop.call("POST", grants, brand["token"], {})
            assert status == 201, grant
        lineup = [p["id"] for p in (*shop.products, shop.tint)]
        status, shop.stream = await shop.call(
            "POST", "/api/streams", shop.host["token"], {"title": "Spring scarves", "products": lineup}
        )
        assert status == 201, shop.stream
        yield shop


# -- helpers a test reads like a person's steps ---------------------------------------------------
async def sign_in(dash: Page, token: str) -> None:
    await until(dash, "!document.querySelector('#gate').hidden", what="the token form")
    await dash.fill("#token-input", token)
    await dash.click("#gate button[type=submit]")


async def open_dashboard(dash: Page, token: str) -> None:
    await sign_in(dash, token)
    await dashboard_shown(dash)


async def dashboard_shown(dash: Page) -> None:
    await until(dash, "!document.querySelector('#dashboard').hidden", what="the dashboard")
    await until(dash, "window.e2e.feed && window.e2e.feed.state === 'open'", what="the live feed")


async def refused(dash: Page, words: str) -> None:
    await until(
        dash,
        f"document.querySelector('#gate-error').textContent.includes({words!r})",
        what=f"the refusal {words!r}",
    )


def text_of(dash: Page, selector: str) -> Any:
    return dash.inner_text(selector)


async def shows(dash: Page, selector: str, text: str) -> None:
    await until(
        dash, f"document.querySelector({selector!r}).textContent === {text!r}", what=f"{selector} = {text}"
    )


async def rows(dash: Page) -> dict[str, list[str]]:
    """The product table as a person reads it: title → its cells."""
    table: list[list[str]] = await dash.eval_on_selector_all(
        "#products tbody tr",
        "(trs) => trs.map((tr) => [tr.querySelector('.t').textContent,"
        " ...[...tr.cells].slice(1).map((td) => td.innerText.trim())])",
    )
    return {cells[0]: cells[1:] for cells in table}


async def shot(pages: Pages, page: Page, what: str) -> None:
    """A screenshot with the pointer off the chart (a hovered minute is shaded)."""
    await page.mouse.move(1, 1)
    await pages.shot(page, what)


async def token_kept_out_of_links(dash: Page, token: str) -> None:
    assert token not in dash.url and "lc_" not in dash.url, "a token never goes into a link"
    assert await dash.evaluate("localStorage.getItem('livecart.dashboard')") == token


# -- the tests --------------------------------------------------------------------------------------
async def test_a_brand_watches_a_purchase_raise_its_figures_without_a_reload(
    pages: Pages, shop: Shop, tmp_path: Path
) -> None:
    scarf, tote = shop.products
    studio = await open_studio(pages, shop)
    await go_live(studio)

    dash = await pages.open(shop.dashboard, label="dashboard")
    await open_dashboard(dash, shop.brand["token"])
    await token_kept_out_of_links(dash, shop.brand["token"])
    assert await text_of(dash, "#badge") == "LIVE"
    assert await text_of(dash, "#gmv") == "$0.00"
    assert await dash.is_visible("#chart-empty") and "No sales yet" in await text_of(dash, "#chart-empty")
    assert "Silk & Co's products" in await text_of(dash, "#scope")
    assert set(await rows(dash)) == {"Silk scarf", "Canvas tote"}
    await shot(pages, dash, "dashboard-empty-desktop")
    await dash.evaluate("window.e2e.sameDocument = true")

    await shop.purchase(scarf, 2, "Mia")
    await shows(dash, "#gmv", "$58.00")
    await until(dash, "document.querySelector('#chart .bar[data-orders=\"1\"]')", what="the minute's bar")
    await until(dash, "document.querySelector('#chart .line[data-total=\"5800\"]')", what="the GMV line")
    assert await dash.is_hidden("#chart-empty")
    assert await dash.evaluate("document.querySelector('#tile-gmv').classList.contains('up')"), "highlighted"
    # another brand's sale is not this brand's; its own next one adds up
    await shop.purchase(shop.tint, 1, "Noor")
    await shop.purchase(tote, 1, "Ivy")
    await shows(dash, "#orders", "2")
    await shows(dash, "#gmv", "$97.00")
    await until(dash, "document.querySelector('#chart .line[data-total=\"9700\"]')", what="the line rising")
    assert await text_of(dash, "#units") == "3"
    # the change in the minute now running, or (past the minute's turn) the average order
    assert re.fullmatch(r"\+\$\d+\.\d\d this minute|\$48\.50 per order", await text_of(dash, "#gmv-sub"))
    table = await rows(dash)
    assert table["Silk scarf"][:4] == ["1", "2", "$58.00", "48"], table
    assert table["Canvas tote"][:4] == ["1", "1", "$39.00", "7"], table
    assert list(table) == ["Silk scarf", "Canvas tote"], "sorted by GMV"
    assert await dash.evaluate("window.e2e.sameDocument") is True, "no reload"
    assert await dash.evaluate("window.e2e.feed.reconnects") == 0, "each change came over the one socket"
    await shot(pages, dash, "dashboard-desktop")

    # the CSV: fetched with the token in a header and saved under the show's name
    async with dash.expect_download() as downloading:
        await dash.click("#csv")
    download = await downloading.value
    assert download.suggested_filename == f"sales-{shop.stream['id']}.csv"
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    lines = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
    assert len(lines) == 1 + 2, lines  # a header, then this brand's two paid orders
    assert "Rose lip tint" not in saved.read_text()

    # the token is kept: a reload opens the dashboard again, and the URL never holds it
    await dash.reload(wait_until="domcontentloaded")
    await dashboard_shown(dash)
    assert await dash.is_hidden("#gate")
    await shows(dash, "#gmv", "$97.00")
    await token_kept_out_of_links(dash, shop.brand["token"])

    # on a phone: the same figures, nothing wider than the screen
    phone = await pages.open(shop.dashboard, phone=True, label="phone")
    await open_dashboard(phone, shop.brand["token"])
    await shows(phone, "#gmv", "$97.00")
    assert await phone.evaluate(
        "document.scrollingElement.scrollWidth <= innerWidth"
        " && [...document.querySelectorAll('.table-wrap')].every((t) => t.scrollWidth <= t.clientWidth)"
    ), "the page and its table fit the phone's width"
    await shot(pages, phone, "dashboard-phone")

    # the host ends the show: the dashboard says so by itself
    await studio.click("#end")
    await studio.click("#confirm-end-yes")
    await until(dash, "document.querySelector('#badge').textContent === 'Ended'", what="the show's end")
    await shows(dash, "#gmv", "$97.00")
    assert await dash.is_hidden("#replay") is False and await text_of(dash, "#replay-orders") == "0"
    # the replay sells on, and is watched: counted apart, the show's figures stay as they ended
    await shop.purchase(tote, 2, "Kim")
    status, _ = await shop.call("POST", f"/api/streams/{shop.stream['id']}/replay/views")
    assert status == 204
    await shows(dash, "#replay-orders", "1")
    await shows(dash, "#replay-gmv", "$78.00")
    await shows(dash, "#replay-views", "1")
    assert await text_of(dash, "#replay-conversion") == "100%"
    assert await text_of(dash, "#gmv") == "$97.00" and await text_of(dash, "#orders") == "2"
    await shot(pages, dash, "dashboard-ended-desktop")
    assert await unlabelled(dash) == [] and await unlabelled(phone) == []
    await pages.check(studio, dash, phone)


async def test_each_token_sees_its_share_and_a_refusal_is_said_in_words(
    pages: Pages, shop: Shop, tmp_path: Path
) -> None:
    scarf, _ = shop.products
    await shop.purchase(scarf, 1, "Mia")
    await shop.purchase(shop.tint, 2, "Noor")
    dash = await pages.open(shop.dashboard, label="dashboard")

    await sign_in(dash, "lc_not_a_token")
    await refused(dash, "not accepted")
    await sign_in(dash, shop.stranger["token"])
    await refused(dash, "cannot see this show's sales")
    assert await dash.evaluate("localStorage.getItem('livecart.dashboard')") is None
    await shot(pages, dash, "dashboard-refused-desktop")

    # the second brand: its own product only
    await open_dashboard(dash, shop.second["token"])
    assert list(await rows(dash)) == ["Rose lip tint"]
    assert await text_of(dash, "#gmv") == "$36.00"
    assert await text_of(dash, "#products-title") == "Your products"
    assert "Silk scarf" not in await text_of(dash, "#dashboard")

    # the host: the whole show, every product
    await dash.click("#sign-out")
    await open_dashboard(dash, shop.host["token"])
    await token_kept_out_of_links(dash, shop.host["token"])
    assert list(await rows(dash)) == ["Rose lip tint", "Silk scarf", "Canvas tote"], "by GMV"
    assert await text_of(dash, "#gmv") == "$65.00"
    assert await text_of(dash, "#orders") == "2"
    assert "the whole show" in await text_of(dash, "#scope")
    await dash.click("#products th[data-key=title] button")
    assert list(await rows(dash)) == ["Canvas tote", "Rose lip tint", "Silk scarf"], "by title"
    assert await dash.get_attribute("#products th[data-key=title]", "aria-sort") == "ascending"

    # the server restarts: the feed comes back by itself with a fresh snapshot
    shop.server.stop(signal.SIGTERM)
    await shows(dash, "#feed-text", "Reconnecting…")
    shop.server.start(tmp_path)
    await until(dash, "window.e2e.feed.state === 'open'", 30_000, what="the feed back")
    await shop.purchase(scarf, 1, "Ivy")
    await shows(dash, "#gmv", "$94.00")
    await shows(dash, "#orders", "3")
    await shot(pages, dash, "dashboard-host-desktop")
    assert await unlabelled(dash) == []
    # the browser logs the refusals it was shown and the sockets it could not open meanwhile
    await pages.check(dash, expected=r"status of 40[13]|ERR_CONNECTION_REFUSED")
