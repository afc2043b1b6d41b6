"""Debian's Chromium driven by Playwright for the page tests, on loopback only (../shared/E2E.md).

One browser per test module (`browser` fixture); each test opens contexts of its own (`Pages`),
at desktop (1280 x 800) or phone (390 x 844) size. Every request a page makes goes through a route
guard that aborts anything not addressed to 127.0.0.1/localhost and records it, page errors
and console errors are collected, and `Pages.check()` fails the test on any of them. Screenshots
go to tests/artifacts/ (git-ignored) so a person can look at what the test saw.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Route,
    ViewportSize,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError

# Debian's binary itself (its /usr/bin/chromium wrapper script works too, but chatters on stderr)
CHROMIUM = next(
    (p for p in ("/usr/lib/chromium/chromium", shutil.which("chromium")) if p and Path(p).exists()),
    "/usr/bin/chromium",
)
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
DESKTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)
WAIT_MS = 20_000  # the longest any single wait may take (both cores busy: the upper end)

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
]
_LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}
# What Chromium itself logs on the console and a page cannot prevent.
_BENIGN = re.compile(r"favicon\.ico|Failed to load resource: the server responded with a status of 40[49]")


async def no_slips(page: Page) -> None:
    """What a slip in a page's code prints where words belong is nowhere on the page."""
    slips = await page.evaluate(
        r"document.body.innerText.match(/\b(null|undefined|NaN)\b|\[object Object\]/g)"
    )
    assert not slips, f"the page shows {slips}"


@dataclass
class Pages:
    """The contexts and pages one test opened, and everything that went wrong in them."""

    browser: Browser
    name: str
    contexts: list[BrowserContext] = field(default_factory=list)
    off_loopback: list[str] = field(default_factory=list)
    # Scripts that cannot load here, answered by the test instead (URL → JavaScript source)
    stubs: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    async def open(self, url: str, *, phone: bool = False, label: str = "page", **options: Any) -> Page:
        context = await self.browser.new_context(
            viewport=PHONE if phone else DESKTOP,
            device_scale_factor=1,
            is_mobile=phone,
            has_touch=phone,
            permissions=["camera", "microphone", "clipboard-read", "clipboard-write"],
            **options,
        )
        context.set_default_timeout(WAIT_MS)
        await context.route("**/*", self._guard)
        self.contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{label}: page error: {error}"))
        page.on("console", lambda message: self._console(label, message))
        await page.goto(url, wait_until="domcontentloaded")
        return page

    def _console(self, label: str, message: ConsoleMessage) -> None:
        if message.type == "error" and not _BENIGN.search(message.text):
            self.errors.append(f"{label}: console error: {message.text}")

    async def _guard(self, route: Route) -> None:
        url = route.request.url
        if url in self.stubs:
            await route.fulfill(status=200, content_type="text/javascript", body=self.stubs[url])
            return
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob") or parts.hostname in _LOOPBACK:
            await route.continue_()
            return
        self.off_loopback.append(url)
        await route.abort()

    async def shot(self, page: Page, what: str) -> Path:
        """A screenshot a person can look at; the words on it are checked for slips first."""
        await no_slips(page)
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{what}.png"
        await page.screenshot(path=str(path))
        return path

    async def check(self, *pages: Page, expected: str | None = None) -> None:
        """No request left loopback, no page error, nothing the pages reported as failed;
        `expected` (a regular expression) names the console errors the test itself caused."""
        assert not self.off_loopback, f"requests off loopback: {self.off_loopback}"
        for page in pages:
            reported = await page.evaluate("(window.e2e && window.e2e.errors) || []")
            assert not reported, f"the page reported: {reported}"
            await no_slips(page)
        errors = [e for e in self.errors if expected is None or not re.search(expected, e)]
        assert not errors, errors

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, timeout=WAIT_MS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def pages(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Pages]:
    opened = Pages(browser, re.sub(r"\W+", "-", request.node.name).strip("-"))
    try:
        yield opened
    finally:
        await opened.close()


# Controls a screen reader would announce without a name: no text, no aria-label, no <label>.
_UNLABELLED = """[...document.querySelectorAll('button, input:not([type=hidden]), select, a[href]')]
  .filter((e) => e.offsetParent !== null || e.getClientRects().length)
  .filter((e) => !(e.getAttribute('aria-label') || e.textContent.trim() || (e.labels && e.labels.length)
                   || e.getAttribute('aria-labelledby') || e.title))
  .map((e) => e.outerHTML.slice(0, 80))"""


async def unlabelled(page: Page) -> list[str]:
    """The visible controls of `page` that have no accessible name."""
    found: list[str] = await page.evaluate(_UNLABELLED)
    return found


async def until(page: Page, expression: str, timeout_ms: int = WAIT_MS, what: str = "") -> Any:
    """Poll `expression` (a JS expression) until it is truthy; returns its value.

    Playwright's own `wait_for_function` evaluates its predicate with `eval`, which the pages'
    Content-Security-Policy forbids (rightly); `evaluate` is not subject to it.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    value: Any = None
    while time.monotonic() < deadline:
        try:
            value = await page.evaluate(expression)
        except PlaywrightError as exc:  # not there yet (a page still loading, an element to come)
            if "Execution context was destroyed" not in exc.message and "TypeError" not in exc.message:
                raise
            value = exc.message.splitlines()[0]
        else:
            if value:
                return value
        await asyncio.sleep(0.1)
    errors = await page.evaluate("(window.e2e && window.e2e.errors) || []")
    raise AssertionError(
        f"{what or expression} did not happen within {timeout_ms} ms (last: {value!r}; page: {errors})"
    )


async def nominated_pair(page: Page, session: str) -> dict[str, str] | None:
    """The nominated candidate pair of `window.e2e[session]` (a Publisher or Player)."""
    pair: dict[str, str] | None = await page.evaluate(f"window.e2e.{session} && window.e2e.{session}.pair()")
    return pair
