"""The watch page on LL-HLS in a real browser: the studio sends H.264 (so the show has HLS), and
with the WebRTC seats taken (`webrtc_viewer_cap = 0`) a phone plays the show over HLS with the
vendored hls.js, says so, counts once, shows a pin when its picture gets there, and keeps chat
and the product card as on WebRTC."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import Pages, browser, pages, until
from tests.procs import ServerProcess
from tests.test_pages import Show, go_live, join_as, open_studio, page_server, playing, say, show

__all__ = ["browser", "pages", "show"]  # the fixtures

pytestmark = pytest.mark.timeout(180)

VENDORED = Path(__file__).resolve().parent.parent / "static" / "vendor" / "hls.js-1.7.4"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with page_server(tmp_path, LIVECART_WEBRTC_VIEWER_CAP="0") as node:
        yield node


async def test_with_the_webrtc_seats_taken_a_phone_watches_over_hls(pages: Pages, show: Show) -> None:
    studio = await open_studio(pages, show)
    await go_live(studio)
    # the studio offered H.264 first, so the relay cuts HLS: the playlist answers
    async with show.http.get(f"{show.base}/api/streams/{show.stream['id']}/hls/live.m3u8") as response:
        assert response.status == 200, await response.text()
        assert "#EXT-X-PART:" in await response.text()
    whep = f"{show.base}/api/streams/{show.stream['id']}/whep"
    offer = {"data": b"v=0\r\n", "headers": {"Content-Type": "application/sdp"}}
    async with show.http.post(whep, **offer) as response:  # type: ignore[arg-type]
        refusal = await response.json()
        assert (response.status, refusal["error"]["code"]) == (503, "webrtc_full")

    before = 1  # the studio's own room socket, once the count has caught up with it
    await counted(show, before)
    watch = await pages.open(show.watch, phone=True, label="watch")
    await until(watch, "document.querySelector('#transport').dataset.transport === 'hls'", what="HLS")
    await playing(watch, after=1.0)
    assert await watch.inner_text("#transport") == "HLS"
    # one viewer count: the HLS viewer is counted by its room socket, playlist requests are not
    playlist = f"{show.base}/api/streams/{show.stream['id']}/hls/live.m3u8"
    for _ in range(20):
        async with show.http.get(playlist) as response:
            assert response.status == 200
    await counted(show, before + 1)
    await asyncio.sleep(2.5)  # a count tick later, still one more, not twenty
    assert (await show.current())["viewers"] == before + 1
    # a pin reaches the page at once but shows only when the picture played reaches its moment
    status, _ = await show.call(
        "POST",
        f"/api/streams/{show.stream['id']}/pin",
        show.host["token"],
        {"product_id": show.products[0]["id"]},
    )
    assert status == 200
    await until(watch, "!document.querySelector('#product').hidden", what="the pinned card")
    pin = await watch.evaluate("window.e2e.released.find((r) => r.type === 'pin')")
    assert pin["at"] is not None and pin["at"] >= pin["ts"] * 1000, pin
    assert pin["applied"] - pin["received"] >= 300, pin  # HLS plays at least 0.75 s behind
    # the room works as on WebRTC: a chat line reaches the page
    await say(watch, "hello from HLS")  # asks for a name first, then sends
    await join_as(watch, "Ann")
    await until(watch, "document.querySelector('#chat').textContent.includes('hello from HLS')", what="chat")
    await pages.shot(watch, "watch-hls")
    await pages.check(studio, watch, expected=r"status of 503")  # the WHEP refusal that sent it to HLS


async def test_the_replay_plays_the_recording_and_shows_what_was_pinned_at_each_moment(
    pages: Pages, show: Show
) -> None:
    studio = await open_studio(pages, show)
    await go_live(studio)
    stream_id, token = show.stream["id"], show.host["token"]
    playlist = f"{show.base}/api/streams/{stream_id}/hls/live.m3u8"
    async with show.http.get(playlist) as response:  # HLS is being cut (H.264 from the studio)
        assert response.status == 200
    scarf, tote = show.products
    for item in (scarf, tote):
        await asyncio.sleep(2.5)
        status, _ = await show.call(
            "POST", f"/api/streams/{stream_id}/pin", token, {"product_id": item["id"]}
        )
        assert status == 200
    await asyncio.sleep(2.5)
    status, _ = await show.call("POST", f"/api/streams/{stream_id}/end", token)
    assert status == 200

    deadline = time.monotonic() + 15
    while (timeline := await show.call("GET", f"/api/streams/{stream_id}/timeline"))[0] != 200:
        assert time.monotonic() < deadline, timeline
        await asyncio.sleep(0.2)
    pins = [e for e in timeline[1]["events"] if e["type"] == "pin"]
    assert [e["data"]["product"]["id"] for e in pins] == [scarf["id"], tote["id"]]

    # the ended show's watch page offers its replay
    replay = await pages.open(show.watch, phone=True, label="replay")
    await until(replay, "!document.querySelector('#replay-link').hidden", what="the replay link")
    await replay.click("#replay-link")
    await until(replay, "location.pathname.startsWith('/replay/')", what="the replay page")
    await until(replay, "document.querySelector('#video').readyState >= 2", what="the replay loading")
    for pin, item in zip(pins, (scarf, tote), strict=True):
        moment = pin["offset"] + 1.0  # a second after the host pinned it
        await replay.evaluate(f"document.querySelector('#video').currentTime = {moment}")
        await until(
            replay,
            f"document.querySelector('#product').dataset.product === '{item['id']}'",
            what=f"{item['title']} on the card at {moment:.1f} s",
        )
        assert item["title"] in await replay.inner_text("#product")
    await pages.shot(replay, "replay")
    # the product on screen is bought at its regular price, as a replay sale
    await replay.click("#buy")
    await until(replay, "!document.querySelector('#sheet').hidden", what="the name sheet")
    await replay.fill("#viewer-name", "Kim")
    await replay.click("#sheet button[type=submit]")
    await until(replay, "document.querySelector('#place')", what="the buy step")
    assert await replay.inner_text("#place") == "Pay $39.00"  # the tote at its list price
    await replay.click("#place")
    await until(replay, "document.querySelector('#confirm-pay')", what="the pay step")
    await pages.shot(replay, "replay-buy")
    await replay.click("#confirm-pay")
    await until(replay, "document.querySelector('#order-state[data-status=paid]')", what="the paid order")
    status, figures = await show.call("GET", f"/api/streams/{stream_id}/sales", show.brand["token"])
    assert status == 200 and figures["orders"] == 0, figures  # the show itself sold nothing
    assert (figures["replay"]["orders"], figures["replay"]["gmv"]) == (1, tote["price"]), figures
    assert figures["replay"]["views"] == 1, figures  # one play, however often it was sought
    await replay.click("#sheet .pay")  # Keep watching
    before = max(0.0, pins[0]["offset"] - 1.5)
    await replay.evaluate(f"document.querySelector('#video').currentTime = {before}")
    await until(replay, "document.querySelector('#product').hidden", what="no card before the first pin")
    await pages.check(studio, replay)


async def counted(show: Show, viewers: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while (now := (await show.current())["viewers"]) != viewers:
        assert time.monotonic() < deadline, f"{now} viewers, not {viewers}"
        await asyncio.sleep(0.25)


def test_the_vendored_hls_js_is_the_pinned_file() -> None:
    digest = hashlib.sha256((VENDORED / "hls.light.min.mjs").read_bytes()).hexdigest()
    assert digest in (VENDORED / "README.md").read_text()
    assert "Apache License" in (VENDORED / "LICENSE").read_text()
