"""The stream directory, one suite for every implementation: who owns a live stream, claims
that expire, and a WHEP (or LL-HLS) request on the wrong node sent (307) to the owner."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import aiohttp
import pytest
from yarl import URL

from core.redis import connect
from streaming import hooks
from streaming.directory import Directory, MemoryDirectory
from streaming.directory_redis import RedisDirectory
from tests import webrtc_peers as rtc
from tests.conftest import ADMIN_TOKEN, redis_for
from tests.procs import ServerProcess, host_and_stream


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def directory(request: pytest.FixtureRequest) -> AsyncIterator[Directory]:
    made: Directory = MemoryDirectory()
    if request.param != "memory":
        url, cluster = redis_for(request)
        made = RedisDirectory(connect(url, cluster=cluster), owns_client=True)
    yield made
    await made.close()


async def test_first_claim_wins_until_released(directory: Directory) -> None:
    stream = "str_" + secrets.token_hex(6)
    assert await directory.owner(stream) is None
    assert await directory.claim(stream, "http://a", 5) == "http://a"
    assert await directory.claim(stream, "http://b", 5) == "http://a"
    assert await directory.claim(stream, "http://a", 5) == "http://a"  # a refresh
    assert await directory.owner(stream) == "http://a"
    await directory.release(stream, "http://b")  # not b's to release
    assert await directory.owner(stream) == "http://a"
    await directory.release(stream, "http://a")
    assert await directory.owner(stream) is None
    assert await directory.claim(stream, "http://b", 5) == "http://b"
    await directory.release(stream, "http://b")


async def test_a_claim_not_refreshed_expires(directory: Directory) -> None:
    stream = "str_" + secrets.token_hex(6)
    assert await directory.claim(stream, "http://a", 0.2) == "http://a"
    await asyncio.sleep(0.35)
    assert await directory.owner(stream) is None
    assert await directory.claim(stream, "http://b", 5) == "http://b"
    await directory.release(stream, "http://b")


async def _post_sdp(
    http: aiohttp.ClientSession, url: str, sdp: str, token: str | None = None
) -> aiohttp.ClientResponse:
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = await http.post(url, data=sdp.encode(), headers=headers, allow_redirects=False)
    await response.read()
    return response


async def test_whep_on_the_other_node_is_sent_to_the_owner(two_nodes: list[ServerProcess]) -> None:
    hooks.install(("127.0.0.1",))
    one, two = two_nodes
    pub = rtc.publisher()
    viewer, got = rtc.viewer()
    async with aiohttp.ClientSession() as http:
        try:
            host, stream = await host_and_stream(http, one.url, ADMIN_TOKEN)
            whip = await _post_sdp(
                http, f"{one.url}/api/streams/{stream['id']}/whip", await rtc.offer(pub), host["token"]
            )
            assert whip.status == 201, await whip.text()
            await rtc.accept(pub, await whip.text())
            for _ in range(100):
                async with http.get(f"{two.url}/api/streams/{stream['id']}") as r:
                    if (await r.json())["state"] == "live":
                        break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("stream did not go live")
            # a second publisher on the other node is refused: the stream is taken
            second = rtc.publisher()
            try:
                again = await _post_sdp(
                    http, f"{two.url}/api/streams/{stream['id']}/whip", await rtc.offer(second), host["token"]
                )
                assert again.status == 409
            finally:
                await rtc.close(second)
            offer = await rtc.offer(viewer)
            moved = await _post_sdp(http, f"{two.url}/api/streams/{stream['id']}/whep", offer)
            assert moved.status == 307
            location = moved.headers["Location"]
            assert location == f"{one.url}/api/streams/{stream['id']}/whep"
            answered = await _post_sdp(http, location, offer)
            assert answered.status == 201
            assert URL(answered.headers["Location"]).origin() == URL(one.url)
            await rtc.accept(viewer, await answered.text())
            await rtc.wait_for(lambda: len(got.video) >= 10, 10, "frames through the owning node")
            # the stream's LL-HLS too (H.264: the relay prefers it), query and all
            hls = f"/api/streams/{stream['id']}/hls"
            for path in (f"{hls}/live.m3u8?_HLS_msn=0&_HLS_part=0", f"{hls}/init.mp4"):
                async with http.get(f"{two.url}{path}", allow_redirects=False) as moved_hls:
                    assert moved_hls.status == 307
                    assert moved_hls.headers["Location"] == f"{one.url}{path}"
                async with http.get(f"{one.url}{path}") as served:
                    assert served.status == 200, await served.text()
        finally:
            await rtc.close(viewer, got)
            await rtc.close(pub)
