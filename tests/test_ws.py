"""The room WebSocket as viewers and hosts live it, on the in-process and the Redis broker."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from pathlib import Path
from typing import Any, cast

import hypothesis
import msgpack
import pytest
from aiohttp import WSMsgType
from hypothesis import strategies as st

from chat.app import HUB
from chat.fanout import LocalRoom
from chat.hub import HubSettings
from chat.session import ChatLimits
from config.settings import Settings
from server.app import create_app, drain
from streaming.app import SHOW
from tests.conftest import ADMIN_TOKEN, REDIS_URL, Api, MakeClient

FAST = HubSettings(likes_interval_s=0.05, presence_interval_s=0.1, ping_interval_s=30, batch_window_s=0.02)


@pytest.fixture(params=["memory", "redis"])
def broker_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def live_settings(tmp_path: Path, broker_kind: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'live.db'}",
        admin_token=ADMIN_TOKEN,
        redis_url=REDIS_URL if broker_kind == "redis" else None,
        public_url="http://livecart.test",
        blocked_words=("spoiler",),
    )


@pytest.fixture
async def live(aiohttp_client: MakeClient, live_settings: Settings) -> Api:
    return Api(await aiohttp_client(create_app(live_settings, hub_settings=FAST)))


class Socket:
    """A test viewer: reads frames, flattens batches, remembers everything it saw."""

    def __init__(self, ws: Any, binary: bool) -> None:
        self.ws = ws
        self.binary = binary
        self.seen: list[dict[str, Any]] = []
        self.seen_unread: list[dict[str, Any]] = []
        self.frames = 0

    async def next(self, timeout: float = 3.0) -> dict[str, Any]:
        if self.seen_unread:
            return self.seen_unread.pop(0)
        message = await self.ws.receive(timeout)
        if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
            raise ConnectionError(f"closed with {self.ws.close_code}")
        self.frames += 1
        if message.type == WSMsgType.BINARY:
            assert self.binary, "binary frame on a JSON socket"
            data = msgpack.unpackb(message.data, raw=False)
        else:
            assert not self.binary, "text frame on a msgpack socket"
            data = message.json()
        events: list[dict[str, Any]] = data if isinstance(data, list) else [data]
        self.seen.extend(events)
        self.seen_unread.extend(events[1:])
        return events[0]

    async def expect(self, type_: str, timeout: float = 3.0) -> dict[str, Any]:
        """Skip events of other types (likes, viewers) until one of `type_` arrives."""
        deadline = time.monotonic() + timeout
        while True:
            event = await self.next(max(0.01, deadline - time.monotonic()))
            if event["type"] == type_:
                return event

    async def nothing_of(self, type_: str, wait: float = 0.3) -> None:
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = await self.next(left)
            except TimeoutError:
                return
            assert event["type"] != type_, event

    async def send(self, message: dict[str, Any]) -> None:
        if self.binary:
            await self.ws.send_bytes(msgpack.packb(message))
        else:
            await self.ws.send_json(message)


async def connect(
    api: Api, stream_id: str, token: str | None = None, since: int | None = None, binary: bool = False
) -> tuple[Socket, dict[str, Any]]:
    params = {}
    if token:
        params["token"] = token
    if since is not None:
        params["since"] = str(since)
    ws = await api.client.ws_connect(
        f"/api/streams/{stream_id}/ws", params=params, protocols=("livecart.msgpack",) if binary else ()
    )
    sock = Socket(ws, binary)
    hello = await sock.next()
    assert hello["type"] == "hello", hello
    return sock, hello


async def _show(api: Api) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    brand = await api.account("brands")
    host = await api.account("hosts", "Mia")
    product = await api.product(brand, title="Scarf")
    stream = await api.stream(host, [product["id"]])
    return host, stream, product


async def test_hello_then_chat_reaches_everyone(live: Api) -> None:
    host, stream, _ = await _show(live)
    viewer = await live.account("viewers", "Lin")
    watcher, hello = await connect(live, stream["id"])
    assert hello["data"]["stream"]["id"] == stream["id"]
    assert hello["data"]["you"] is None and hello["data"]["seq"] == 0
    assert "seq" not in hello and hello["ts"] > 0
    talker, hello = await connect(live, stream["id"], viewer["token"])
    assert hello["data"]["you"] == {"id": viewer["id"], "name": "Lin", "role": "viewer"}
    hosting, _ = await connect(live, stream["id"], host["token"], binary=True)

    await talker.send({"type": "chat", "text": "  is the scarf silk? <b>yes</b> "})
    for sock in (watcher, talker, hosting):
        event = await sock.expect("chat")
        assert event["seq"] == 1
        assert event["data"]["text"] == "is the scarf silk? <b>yes</b>"  # data, not markup
        assert event["data"]["user"] == {"id": viewer["id"], "name": "Lin", "role": "viewer"}
        assert event["data"]["id"].startswith("msg_")
    await hosting.send({"type": "chat", "text": "Yes, 100% silk"})  # msgpack from the client too
    event = await watcher.expect("chat")
    assert event["seq"] == 2 and event["data"]["user"]["role"] == "host"


async def test_anonymous_sockets_only_read(live: Api) -> None:
    _, stream, _ = await _show(live)
    anon, _ = await connect(live, stream["id"])
    other, _ = await connect(live, stream["id"])
    for message in ({"type": "chat", "text": "hi"}, {"type": "like", "count": 1}):
        await anon.send(message)
        error = await anon.expect("error")
        assert error["data"]["code"] == "read_only"
    await other.nothing_of("chat")
    assert await live.client.app[HUB].broker.last_seq(stream["id"]) == 0


async def test_pins_and_state_reach_the_room(live: Api) -> None:
    host, stream, product = await _show(live)
    sock, _ = await connect(live, stream["id"])
    path = f"/api/streams/{stream['id']}/pin"
    await live.call("POST", path, host["token"], {"product_id": product["id"]}, expect=200)
    pin = await sock.expect("pin")
    assert pin["data"] == {"product": product}
    # the room's hello is shared by joiners for a moment, but never across a pin
    _, hello = await connect(live, stream["id"])
    assert hello["data"]["stream"]["pinned"] == product and hello["data"]["seq"] == pin["seq"]
    await live.call("DELETE", path, host["token"], expect=204)
    assert (await sock.expect("unpin"))["data"] == {}
    await live.call("POST", f"/api/streams/{stream['id']}/end", host["token"], expect=200)
    assert (await sock.expect("stream"))["data"] == {"state": "ended"}


async def test_since_recovers_missed_events_or_asks_for_resync(live: Api) -> None:
    host, stream, _ = await _show(live)
    talker, _ = await connect(live, stream["id"], host["token"])
    for i in range(4):
        await talker.send({"type": "chat", "text": f"message {i}"})
        await talker.expect("chat")
    late, hello = await connect(live, stream["id"], since=1)
    assert hello["data"]["seq"] == 4
    recovered = [await late.expect("chat") for _ in range(3)]
    assert [e["seq"] for e in recovered] == [2, 3, 4]
    assert [e["data"]["text"] for e in recovered] == ["message 1", "message 2", "message 3"]
    await talker.send({"type": "chat", "text": "live again"})
    assert (await late.expect("chat"))["seq"] == 5  # and then live, nothing twice
    future, _ = await connect(live, stream["id"], since=99)
    resync = await future.expect("resync")
    assert resync["data"] == {"seq": 5}
    up_to_date, _ = await connect(live, stream["id"], since=5)
    await up_to_date.nothing_of("chat")


async def test_bad_frames_get_errors_and_abuse_closes_1008(live: Api) -> None:
    _, stream, _ = await _show(live)
    viewer = await live.account("viewers")
    sock, _ = await connect(live, stream["id"], viewer["token"])
    cases = [
        ("x" * 5000, "too_large"),
        ("{not json", "malformed"),
        ('["chat"]', "malformed"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "chat", "text": 5}', "invalid"),
        ('{"type": "chat", "text": "   "}', "empty"),
        ('{"type": "chat", "text": "' + "a" * 501 + '"}', "too_long"),
        ('{"type": "like", "count": 0}', "invalid"),
        ('{"type": "like", "count": 51}', "invalid"),
    ]
    for raw, code in cases:
        await sock.ws.send_str(raw)
        error = await sock.expect("error")
        assert error["data"]["code"] == code, (raw, error)
    await sock.ws.send_bytes(b"\x00\x01")  # binary on a JSON socket
    assert (await sock.expect("error"))["data"]["code"] == "malformed"
    # the tenth error in a minute closes the socket as a policy violation
    with pytest.raises(ConnectionError, match="1008"):
        for _ in range(3):
            await sock.expect("never")
    assert await live.client.app[HUB].broker.last_seq(stream["id"]) == 0


async def test_rate_limit(live: Api) -> None:
    _, stream, _ = await _show(live)
    viewer = await live.account("viewers")
    sock, _ = await connect(live, stream["id"], viewer["token"])
    for i in range(5):
        await sock.send({"type": "chat", "text": f"spam {i}"})
        assert (await sock.expect("chat"))["data"]["text"] == f"spam {i}"
    await sock.send({"type": "chat", "text": "one too many"})
    error = await sock.expect("error")
    assert error["data"]["code"] == "rate_limited" and error["data"]["retry_after"] > 0
    await sock.nothing_of("chat")


async def test_blocked_words_global_and_per_stream(live: Api) -> None:
    host, stream, _ = await _show(live)
    viewer = await live.account("viewers")
    sock, _ = await connect(live, stream["id"], viewer["token"])
    await sock.send({"type": "chat", "text": "SPOILER: it ends well"})
    assert (await sock.expect("error"))["data"]["code"] == "blocked_word"
    path = f"/api/streams/{stream['id']}/blocked-words"
    status, _ = await live.call("PUT", path, viewer["token"], {"words": ["cheap"]})
    assert status == 403
    _, body = await live.call("PUT", path, host["token"], {"words": ["Cheap", " knockoff "]}, expect=200)
    assert body == {"words": ["cheap", "knockoff"]}
    _, body = await live.call("GET", path, host["token"], expect=200)
    assert body == {"words": ["cheap", "knockoff"]}
    await sock.send({"type": "chat", "text": "looks cheap"})
    assert (await sock.expect("error"))["data"]["code"] == "blocked_word"
    await sock.send({"type": "chat", "text": "cheapest price?"})  # whole words only
    assert (await sock.expect("chat"))["data"]["text"] == "cheapest price?"
    status, body = await live.call("PUT", path, host["token"], {"words": [""]})
    assert status == 422


async def test_host_moderation_delete_mute_ban(live: Api) -> None:
    host, stream, _ = await _show(live)
    troll = await live.account("viewers", "Troll")
    fan = await live.account("viewers", "Fan")
    hosting, _ = await connect(live, stream["id"], host["token"])
    trolling, _ = await connect(live, stream["id"], troll["token"])
    watching, _ = await connect(live, stream["id"], fan["token"])

    await watching.send({"type": "moderate", "action": "ban", "user_id": troll["id"]})
    assert (await watching.expect("error"))["data"]["code"] == "forbidden"

    await trolling.send({"type": "chat", "text": "buy elsewhere"})
    message = await watching.expect("chat")
    await hosting.send({"type": "moderate", "action": "delete", "message_id": message["data"]["id"]})
    deleted = await watching.expect("moderation")
    assert deleted["data"] == {"action": "delete", "message_id": message["data"]["id"]}

    await hosting.send({"type": "moderate", "action": "mute", "user_id": troll["id"], "duration_s": 60})
    muted = await watching.expect("moderation")
    assert muted["data"]["action"] == "mute" and muted["data"]["user_id"] == troll["id"]
    await trolling.send({"type": "chat", "text": "still here"})
    assert (await trolling.expect("error"))["data"]["code"] == "muted"
    await watching.nothing_of("chat")

    await hosting.send({"type": "moderate", "action": "ban", "user_id": troll["id"]})
    banned = await watching.expect("moderation")
    assert banned["data"] == {"action": "ban", "user_id": troll["id"]}
    with pytest.raises(ConnectionError, match="1008"):
        await trolling.expect("never")
    # the ban holds for a new socket of the same viewer
    ws = await live.client.ws_connect(f"/api/streams/{stream['id']}/ws", params={"token": troll["token"]})
    first = await ws.receive_json()
    assert first["type"] == "error" and first["data"]["code"] == "banned"
    closing = await ws.receive()
    assert closing.type == WSMsgType.CLOSE and ws.close_code == 1008
    # and the host cannot ban themselves
    await hosting.send({"type": "moderate", "action": "ban", "user_id": host["id"]})
    assert (await hosting.expect("error"))["data"]["code"] == "invalid"


async def test_likes_are_aggregated_and_viewers_counted(live: Api) -> None:
    _, stream, _ = await _show(live)
    fans = [await live.account("viewers", f"fan{i}") for i in range(2)]
    socks = [(await connect(live, stream["id"], fan["token"]))[0] for fan in fans]
    viewers = await socks[0].expect("viewers")
    while viewers["data"]["count"] != 2:
        viewers = await socks[0].expect("viewers")
    for _ in range(3):
        await socks[1].send({"type": "like", "count": 5})
    total = 0
    while total < 15:
        likes = await socks[0].expect("likes")
        assert likes["data"]["count"] > 0
        total = likes["data"]["total"]
    assert total == 15
    _, body = await live.call("GET", f"/api/streams/{stream['id']}")
    assert body["viewers"] == 0  # only live streams report viewers
    await socks[1].ws.close()
    viewers = await socks[0].expect("viewers")
    while viewers["data"]["count"] != 1:
        viewers = await socks[0].expect("viewers")
    assert await live.client.app[HUB].state.unique_viewers(stream["id"]) == 2


async def test_an_anonymous_viewer_keeping_its_id_is_one_unique_viewer(live: Api) -> None:
    _, stream, _ = await _show(live)
    hub = live.client.app[HUB]
    mine, other = "a" * 16 + secrets.token_hex(4), "b" * 16 + secrets.token_hex(4)
    for anon in (mine, mine, mine, other):  # a page reconnecting twice, and another page
        ws = await live.client.ws_connect(f"/api/streams/{stream['id']}/ws?anon={anon}")
        await ws.receive()  # hello
        await asyncio.sleep(0.15)  # one presence tick
        await ws.close()
    assert await hub.state.unique_viewers(stream["id"]) == 2
    for bad in ("short", "x" * 65, "spaces not allowed here", "ünicode-ünicode-ü"):
        status, body = await live.call("GET", f"/api/streams/{stream['id']}/ws", params={"anon": bad})
        assert (status, body["error"]["code"]) == (400, "invalid_anon"), bad


async def test_hearts_are_rate_limited_per_viewer(live: Api) -> None:
    _, stream, _ = await _show(live)
    fan = await live.account("viewers", "fan")
    watcher, _ = await connect(live, stream["id"])
    sock, _ = await connect(live, stream["id"], fan["token"])
    for _ in range(6):  # 300 hearts at once: the burst (100) goes through, the rest is refused
        await sock.send({"type": "like", "count": 50})
    refused = [await sock.expect("error") for _ in range(4)]
    assert {e["data"]["code"] for e in refused} == {"rate_limited"}
    assert all(0 < e["data"]["retry_after"] <= 2.5 for e in refused)
    total = 0
    while total < 100:
        total = (await watcher.expect("likes"))["data"]["total"]
    assert total == 100
    await asyncio.sleep(1.0)  # 20 hearts a second come back
    await sock.send({"type": "like", "count": 20})
    while total < 120:
        total = (await watcher.expect("likes"))["data"]["total"]
    assert total == 120


async def test_bursts_go_out_batched_and_in_order(live: Api) -> None:
    _, stream, _ = await _show(live)
    sock, _ = await connect(live, stream["id"])
    hub = live.client.app[HUB]
    for i in range(50):
        await hub.broker.publish(stream["id"], "chat", {"id": f"m{i}", "user": {}, "text": str(i)})
    seqs = [(await sock.expect("chat"))["seq"] for _ in range(50)]
    assert seqs == list(range(1, 51))
    assert sock.frames < 50  # some frames carried several events


async def test_slow_consumer_is_dropped_and_memory_stays_flat(live: Api, tmp_path: Path) -> None:
    _, stream, _ = await _show(live)
    hub = live.client.app[HUB]
    good, _ = await connect(live, stream["id"])
    # a viewer that never reads: a raw socket with a tiny receive buffer
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", live.client.port))
    raw.sendall(
        f"GET /api/streams/{stream['id']}/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    try:
        deadline = time.monotonic() + 5
        while sum(len(r.sockets) for r in hub.rooms.values()) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        # Loopback lets the kernel absorb megabytes; a small send buffer on the server's side
        # of the stuck socket stands in for a slow link, so the cap is what fills up.
        stuck = max(hub.rooms[stream["id"]].sockets.values(), key=lambda c: c.id)
        server_side = cast(asyncio.Transport, stuck.transport)
        server_side.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        text = "x" * 1000
        received = 0
        peak_buffer = 0
        for i in range(1500):  # ~1.5 MB: past kernel buffers and the 256 KiB cap for the stuck one
            await hub.broker.publish(stream["id"], "chat", {"id": f"m{i}", "user": {}, "text": text})
            room = hub.rooms[stream["id"]]
            peak_buffer = max(
                peak_buffer, *(c.transport.get_write_buffer_size() for c in room.sockets.values())
            )
            if i % 20 == 19:
                while received < i + 1:
                    await good.expect("chat")
                    received += 1
        room = hub.rooms[stream["id"]]
        assert hub.counters.dropped_slow == 1
        assert len(room.sockets) == 1  # the good one stays
        assert received == 1500
        # what the stuck socket could hold never went far past the cap (one batch of frames)
        assert peak_buffer < FAST.send_buffer_limit + 64 * 1024
    finally:
        raw.close()


async def test_shutdown_closes_sockets_with_1001(live: Api) -> None:
    _, stream, _ = await _show(live)
    sock, _ = await connect(live, stream["id"])
    draining = asyncio.create_task(drain(live.client.app, 2.0))
    with pytest.raises(ConnectionError, match="1001"):
        await sock.expect("never")
    assert await draining


async def test_refused_before_upgrade(live: Api) -> None:
    _, stream, _ = await _show(live)
    status, body = await live.call("GET", "/api/streams/str_missing/ws")
    assert status == 404 and body["error"]["code"] == "stream_not_found"
    status, body = await live.call("GET", f"/api/streams/{stream['id']}/ws?token=lc_wrong")
    assert status == 401
    status, body = await live.call("GET", f"/api/streams/{stream['id']}/ws?since=-3")
    assert status == 400 and body["error"]["code"] == "invalid_since"
    status, body = await live.call("GET", f"/api/streams/{stream['id']}/ws")
    assert status == 400 and body["error"]["code"] == "websocket_required"


def _random_frames(count: int) -> list[str]:
    """Frames a confused or hostile client might send: text, JSON values, near-miss messages."""
    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=8,
    )
    near_miss = st.fixed_dictionaries(
        {"type": st.sampled_from(["chat", "like", "moderate", "x"])},
        optional={"text": values, "count": values, "action": values, "user_id": values},
    )
    frames = st.one_of(st.text(max_size=600), values.map(_json), near_miss.map(_json))
    found: list[str] = []

    @hypothesis.settings(max_examples=count, deadline=None, database=None)
    @hypothesis.given(frame=frames)
    def collect(frame: str) -> None:
        found.append(frame)

    collect()
    return found


def _json(value: object) -> str:
    return json.dumps(value)  # the standard library writes any integer, as a client might


@pytest.mark.parametrize("broker_kind", ["memory"])
async def test_any_frame_gets_a_documented_answer_and_breaks_nothing(
    aiohttp_client: MakeClient, live_settings: Settings
) -> None:
    patient = ChatLimits(abuse_errors=10**6, chat_burst=10**6)  # answer every frame, close none
    live = Api(await aiohttp_client(create_app(live_settings, hub_settings=FAST, chat_limits=patient)))
    _, stream, _ = await _show(live)
    viewer = await live.account("viewers")
    app = live.client.app
    sock, _ = await connect(live, stream["id"], viewer["token"])
    hub = app[HUB]
    documented = {"malformed", "unknown_type", "invalid", "empty", "too_long", "too_large", "forbidden"}
    for frame in _random_frames(60):
        before = await hub.broker.last_seq(stream["id"])
        await sock.ws.send_str(frame)
        event = await sock.next()
        while event["type"] == "viewers":
            event = await sock.next()
        if event["type"] == "error":
            assert event["data"]["code"] in documented, (frame, event)
            assert await hub.broker.last_seq(stream["id"]) == before, frame  # nothing published
        else:  # a chat went out, or a like was counted (likes arrive with the next tick)
            assert event["type"] in ("chat", "likes"), (frame, event)
    await sock.send({"type": "chat", "text": "still here"})
    assert (await sock.expect("chat"))["data"]["text"] == "still here"


async def test_a_join_storm_reads_the_stream_once(live: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """60 sockets joining at once: the stream (its host, its view) is read once, not per socket,
    and a pin between two storms is in every later joiner's hello."""
    host, stream, product = await _show(live)
    await connect(live, stream["id"])  # the room exists; its view is then read on the first join
    reads: list[str] = []
    store = live.client.app[SHOW].streams.store
    read = store.get_stream

    async def counted(stream_id: str) -> Any:
        reads.append(stream_id)
        await asyncio.sleep(0.05)  # a slow database: every joiner of the moment arrives meanwhile
        return await read(stream_id)

    monkeypatch.setattr(store, "get_stream", counted)
    await asyncio.sleep(LocalRoom.VIEW_TTL_S + 0.1)  # the shared view goes stale
    started = time.monotonic()
    storm = await asyncio.gather(*(connect(live, stream["id"]) for _ in range(60)))
    # one load for all of them (one more per VIEW_TTL_S should the storm last longer on a slow machine)
    assert 1 <= len(reads) <= 1 + (time.monotonic() - started) / LocalRoom.VIEW_TTL_S, reads
    assert all(hello["data"]["stream"]["pinned"] is None for _, hello in storm)
    await live.call("POST", f"/api/streams/{stream['id']}/pin", host["token"], {"product_id": product["id"]})
    late, after = await connect(live, stream["id"])
    if after["data"]["stream"]["pinned"] is None:  # joined before the pin's event got here: it follows
        pin = await late.next()
        assert (pin["type"], pin["data"]["product"]["id"]) == ("pin", product["id"]), pin
    else:
        assert after["data"]["stream"]["pinned"]["id"] == product["id"]
    await late.ws.close()
    for sock, _ in storm:
        await sock.ws.close()
