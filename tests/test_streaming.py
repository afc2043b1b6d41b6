"""Publishing and watching over WebRTC: a host publishes (WHIP), viewers watch (WHEP), the
picture moves, late joiners see it at once, loss does not stall them, and ending a stream
leaves nothing running. Every peer is aiortc on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from aioice import stun
from aiortc import RTCRtpSender
from aiortc.rtp import RtpPacket
from yarl import URL

from config.settings import Settings
from server.app import create_app
from streaming import hooks, hooks_ice
from streaming.app import RELAY_SETTINGS, SHOW
from streaming.sessions import RelaySettings
from tests import webrtc_peers as rtc
from tests.conftest import ADMIN_TOKEN, Api, MakeClient

FAST = RelaySettings(publisher_grace_s=0.5, directory_ttl_s=3.0, connect_timeout_s=5.0)


@pytest.fixture
def rtc_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'rtc.db'}",
        admin_token=ADMIN_TOKEN,
        public_url="http://livecart.test",
        cors_origins=("https://shop.example",),
        ice_addresses=("127.0.0.1",),
    )


@pytest.fixture
async def rtc_api(aiohttp_client: MakeClient, rtc_settings: Settings) -> Api:
    hooks.install(("127.0.0.1",))  # the test's own peers too
    app = create_app(rtc_settings)
    app[RELAY_SETTINGS] = FAST
    return Api(await aiohttp_client(app))


async def _show(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    host = await api.account("hosts", "Mia")
    stream = await api.stream(host, [])
    return host, stream


async def _sdp(api: Api, path: str, sdp: str, token: str | None = None, expect: int = 201) -> tuple[str, str]:
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = await api.client.post(path, data=sdp.encode(), headers=headers, allow_redirects=False)
    text = await response.text()
    assert response.status == expect, (response.status, text)
    if expect == 201:
        assert response.content_type == "application/sdp"
    return response.headers.get("Location", ""), text


async def publish(api: Api, host: dict[str, Any], stream: dict[str, Any], **kw: Any) -> tuple[Any, str]:
    pc = rtc.publisher(**kw)
    location, answer = await _sdp(
        api, f"/api/streams/{stream['id']}/whip", await rtc.offer(pc), host["token"]
    )
    await rtc.accept(pc, answer)
    await wait_state(api, stream, "live")
    return pc, URL(location).path


async def watch(api: Api, stream: dict[str, Any], **kw: Any) -> tuple[Any, rtc.Received, str]:
    pc, got = rtc.viewer(**kw)
    location, answer = await _sdp(api, f"/api/streams/{stream['id']}/whep", await rtc.offer(pc))
    await rtc.accept(pc, answer)
    return pc, got, URL(location).path


async def _state(api: Api, stream: dict[str, Any]) -> str:
    _, body = await api.call("GET", f"/api/streams/{stream['id']}", expect=200)
    return str(body["state"])


async def wait_state(api: Api, stream: dict[str, Any], state: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (current := await _state(api, stream)) != state:
        assert time.monotonic() < deadline, f"stream still {current}, wanted {state}"
        await asyncio.sleep(0.05)


def candidates(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]


async def test_viewer_sees_the_moving_picture_and_hears_the_tone(rtc_api: Api) -> None:
    host, stream = await _show(rtc_api)
    pub, session = await publish(rtc_api, host, stream)
    viewer, got = None, None
    try:
        assert session.startswith(f"/api/streams/{stream['id']}/whip/")
        await wait_state(rtc_api, stream, "live")
        viewer, got, _ = await watch(rtc_api, stream)
        await rtc.wait_for(lambda: len(got.video) >= 20 and got.audio >= 20, 10, "frames at the viewer")
        positions = [x for _, x in got.video]
        assert len(set(positions)) >= 10, positions  # the bar moves: not a frozen picture
        moves = [b - a for a, b in itertools.pairwise(positions)]
        assert sum(1 for m in moves if m > 0) >= len(moves) // 2, positions  # mostly rightwards
        metrics = await (await rtc_api.client.get("/metrics")).text()
        for line in (
            "livecart_relay_streams 1.0",
            "livecart_relay_publishers 1.0",
            "livecart_relay_viewers 1.0",
        ):
            assert line in metrics, line
    finally:
        if viewer is not None:
            await rtc.close(viewer, got)
        await rtc.close(pub)


async def test_only_loopback_candidates_and_no_ice_server(rtc_api: Api) -> None:
    host, stream = await _show(rtc_api)
    pub = rtc.publisher()
    try:
        offer = await rtc.offer(pub)
        _, answer = await _sdp(rtc_api, f"/api/streams/{stream['id']}/whip", offer, host["token"])
        for sdp in (offer, answer):
            found = candidates(sdp)
            assert found and all(" 127.0.0.1 " in c and " typ host" in c for c in found), found
        relay = rtc_api.client.app[SHOW].relay
        (peer,) = [r.publisher for r in relay.relays.values()]
        assert peer is not None
        for transceiver in peer.pc.getTransceivers():
            ice = transceiver.receiver.transport.transport.iceGatherer._connection
            assert ice.stun_server is None and ice.turn_server is None
    finally:
        await rtc.close(pub)


async def test_late_joiner_gets_a_picture_within_a_second(rtc_api: Api) -> None:
    host, stream = await _show(rtc_api)
    pub, _ = await publish(rtc_api, host, stream)
    first, got_first, _ = await watch(rtc_api, stream)
    late, got_late = None, None
    try:
        await rtc.wait_for(lambda: len(got_first.video) > 5, 10, "the first viewer's picture")
        await asyncio.sleep(1.5)  # well past the first keyframe
        asked = time.monotonic()
        late, got_late, _ = await watch(rtc_api, stream)
        await rtc.wait_for(lambda: got_late.video, 5, "the late joiner's first frame")
        waited = got_late.video[0][0] - asked
        assert waited < 1.0, f"late joiner waited {waited:.2f}s for a picture"
        feed = rtc_api.client.app[SHOW].relay.relays[stream["id"]].feeds["video"]
        assert feed.keyframes.sent >= 2  # one per joining viewer, forwarded to the publisher
    finally:
        for pc, got in ((late, got_late), (first, got_first)):
            if pc is not None:
                await rtc.close(pc, got)
        await rtc.close(pub)


async def test_one_percent_loss_on_the_publisher_leg_does_not_stall_viewers(rtc_api: Api) -> None:
    host, stream = await _show(rtc_api)
    pub = rtc.publisher()
    _, answer = await _sdp(rtc_api, f"/api/streams/{stream['id']}/whip", await rtc.offer(pub), host["token"])
    await rtc.accept(pub, answer)
    counts = rtc.drop_rtp(pub, 0.01)
    viewer, got = None, None
    try:
        await wait_state(rtc_api, stream, "live")
        viewer, got, _ = await watch(rtc_api, stream)
        await rtc.wait_for(lambda: got.video, 5, "a first frame")
        since = got.video[0][0]
        await asyncio.sleep(5)
        assert counts["dropped"] > 0, counts
        gap = got.longest_gap(since)
        assert gap <= 1.0, f"viewer stalled {gap:.2f}s with {counts}"
        assert len(got.video) >= 5 * rtc.FPS * 0.7, len(got.video)
        assert len({x for _, x in got.video[-30:]}) > 5  # still moving at the end
    finally:
        if viewer is not None:
            await rtc.close(viewer, got)
        await rtc.close(pub)


async def test_h264_constrained_baseline_is_relayed(rtc_api: Api) -> None:
    host, stream = await _show(rtc_api)
    pub, _ = await publish(rtc_api, host, stream, audio=False, video_codec="42e01f")
    viewer, got = None, None
    try:
        await wait_state(rtc_api, stream, "live")
        feed = rtc_api.client.app[SHOW].relay.relays[stream["id"]].feeds["video"]
        assert feed.codec.mimeType == "video/H264"
        viewer, got, _ = await watch(rtc_api, stream, audio=True)  # asks for audio the stream lacks
        await rtc.wait_for(lambda: len(got.video) >= 15, 10, "H264 frames at the viewer")
        assert len({x for _, x in got.video}) >= 8
    finally:
        if viewer is not None:
            await rtc.close(viewer, got)
        await rtc.close(pub)


def _new_tasks(before: set[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    """Tasks started since `before`, other than the HTTP server's keep-alive connections."""
    return [
        t
        for t in asyncio.all_tasks() - before
        if "RequestHandler" not in getattr(t.get_coro(), "__qualname__", "")
    ]


def _relay_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.endswith("-decoder")]


async def test_publisher_gone_ends_the_stream_after_grace_and_nothing_is_left(rtc_api: Api) -> None:
    tasks_before = asyncio.all_tasks()
    host, stream = await _show(rtc_api)
    pub, _ = await publish(rtc_api, host, stream)
    viewer, got, _ = await watch(rtc_api, stream)
    relay = rtc_api.client.app[SHOW].relay
    try:
        await rtc.wait_for(lambda: len(got.video) > 3, 10, "frames")
        assert _relay_threads()
        await pub.close()  # the host's browser goes away
        await asyncio.sleep(FAST.publisher_grace_s / 2)
        assert await _state(rtc_api, stream) == "live"  # still within the grace period
        await wait_state(rtc_api, stream, "ended", timeout=5)
        await rtc.wait_for(lambda: viewer.connectionState in ("closed", "failed"), 10, "viewer closed")
    finally:
        await rtc.close(viewer, got)
        await rtc.close(pub)
    assert relay.relays == {}
    await rtc.wait_for(lambda: not _relay_threads(), 5, f"decoder threads to end: {_relay_threads()}")
    await rtc.wait_for(lambda: not _new_tasks(tasks_before), 5, f"tasks to end: {_new_tasks(tasks_before)}")
    # and it cannot be published again
    pc = rtc.publisher()
    try:
        await _sdp(
            rtc_api, f"/api/streams/{stream['id']}/whip", await rtc.offer(pc), host["token"], expect=409
        )
    finally:
        await rtc.close(pc)


async def test_host_ending_the_stream_closes_its_sessions_at_once(
    aiohttp_client: MakeClient, rtc_settings: Settings
) -> None:
    hooks.install(("127.0.0.1",))
    app = create_app(rtc_settings)
    app[RELAY_SETTINGS] = RelaySettings(publisher_grace_s=0.5, directory_ttl_s=60.0, connect_timeout_s=5.0)
    api = Api(await aiohttp_client(app))
    host, stream = await _show(api)
    pub, _ = await publish(api, host, stream)
    viewer, got, _ = await watch(api, stream)
    try:
        await rtc.wait_for(lambda: len(got.video) > 3, 10, "frames")
        await api.call("POST", f"/api/streams/{stream['id']}/end", host["token"], expect=200)
        # not at the next directory refresh (20 s away here): now
        await rtc.wait_for(lambda: viewer.connectionState in ("closed", "failed"), 2, "viewer closed")
        assert app[SHOW].relay.relays == {}
    finally:
        await rtc.close(viewer, got)
        await rtc.close(pub)


async def test_publisher_reconnecting_within_grace_keeps_the_stream(rtc_api: Api) -> None:
    host, stream = await _show(rtc_api)
    pub, _ = await publish(rtc_api, host, stream)
    viewer, got, _ = await watch(rtc_api, stream)
    again = None
    try:
        await rtc.wait_for(lambda: len(got.video) > 3, 10, "frames")
        await pub.close()
        await asyncio.sleep(0.1)
        again, _ = await publish(rtc_api, host, stream)
        seen = len(got.video)
        relay = rtc_api.client.app[SHOW].relay.relays[stream["id"]]
        video = relay.feeds["video"]
        # generous: a loaded machine (the whole suite on two cores) once took more than 5 s here;
        # what the relay knew then goes into the message
        try:
            await rtc.wait_for(lambda: len(got.video) > seen + 10, 15, "frames from the new publisher")
        except AssertionError as exc:
            state = (
                f"{video.codec.name}, {video.keyframes.sent} keyframe requests, {len(relay.viewers)} viewers"
            )
            raise AssertionError(f"{exc} ({len(got.video) - seen} frames; {state})") from None
        await asyncio.sleep(FAST.publisher_grace_s * 2)
        assert await _state(rtc_api, stream) == "live"
    finally:
        await rtc.close(viewer, got)
        await rtc.close(pub)
        if again is not None:
            await rtc.close(again)


async def test_delete_sessions(rtc_api: Api) -> None:
    host, stream = await _show(rtc_api)
    pub, session = await publish(rtc_api, host, stream)
    viewer, got, viewing = await watch(rtc_api, stream)
    relay = rtc_api.client.app[SHOW].relay
    try:
        assert len(relay.relays[stream["id"]].viewers) == 1
        await rtc_api.call("DELETE", viewing, expect=204)
        assert relay.relays[stream["id"]].viewers == {}
        await rtc_api.call("DELETE", viewing, expect=404)
        await rtc_api.call("PATCH", session, data=b"a=candidate", expect=405)
        await rtc_api.call("DELETE", session, expect=204)
        assert await _state(rtc_api, stream) == "ended"
        assert relay.relays == {}
        await rtc_api.call("DELETE", session, expect=404)
    finally:
        await rtc.close(viewer, got)
        await rtc.close(pub)


async def test_bad_requests(rtc_api: Api) -> None:
    host, stream = await _show(rtc_api)
    other = await rtc_api.account("hosts", "Noor")
    whip, whep = f"/api/streams/{stream['id']}/whip", f"/api/streams/{stream['id']}/whep"
    pub = rtc.publisher()
    try:
        offer = await rtc.offer(pub)
        status, body = await rtc_api.call(
            "POST", whip, host["token"], data=offer, headers={"Content-Type": "text/plain"}
        )
        assert status == 415 and body["error"]["code"] == "unsupported_media_type"
        sdp = {"Content-Type": "application/sdp"}
        status, body = await rtc_api.call("POST", whip, None, data=offer, headers=sdp)
        assert status == 401
        status, body = await rtc_api.call("POST", whip, other["token"], data=offer, headers=sdp)
        assert status == 403
        for garbage in ("hello", "v=0\r\nm=audio x\r\n", "v=0\r\ns=-\r\n"):
            status, body = await rtc_api.call("POST", whip, host["token"], data=garbage, headers=sdp)
            assert status == 400 and body["error"]["code"] in ("invalid_sdp", "no_media"), (garbage, body)
        pcmu = rtc.connection()
        pcmu.addTransceiver("audio", direction="sendonly").setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/PCMU"]
        )
        pcmu_only = await rtc.offer(pcmu)
        await rtc.close(pcmu)
        status, body = await rtc_api.call("POST", whip, host["token"], data=pcmu_only, headers=sdp)
        assert status == 400 and body["error"]["code"] in ("no_usable_codec", "invalid_sdp"), body
        # not live yet: nobody can watch
        status, body = await rtc_api.call("POST", whep, None, data=offer, headers=sdp)
        assert status == 409 and body["error"]["code"] == "stream_not_live"
        status, _ = await rtc_api.call(
            "POST", "/api/streams/nope/whip", host["token"], data=offer, headers=sdp
        )
        assert status == 404
    finally:
        await rtc.close(pub)
    first, _ = await publish(rtc_api, host, stream)
    second = rtc.publisher()
    try:
        await _sdp(rtc_api, whip, await rtc.offer(second), host["token"], expect=409)
    finally:
        await rtc.close(second)
        await rtc.close(first)


def _with_lines(sdp: str, after: str, lines: list[str]) -> str:
    """The SDP with `lines` added after the first line starting with `after`."""
    out = []
    added = False
    for line in sdp.splitlines():
        out.append(line)
        if not added and line.startswith(after):
            out += lines
            added = True
    return "\r\n".join(out) + "\r\n"


async def test_offers_aiortc_cannot_take_are_400_and_outsized_ones_are_refused_unparsed(rtc_api: Api) -> None:
    host, stream = await _show(rtc_api)
    whip, whep = f"/api/streams/{stream['id']}/whip", f"/api/streams/{stream['id']}/whep"
    first, _ = await publish(rtc_api, host, stream)
    viewer, _ = rtc.viewer()
    try:
        good = await rtc.offer(viewer)
        # an a=fmtp line for a payload type with no a=rtpmap: aiortc raised StopIteration (500)
        orphan_fmtp = _with_lines(good, "m=video", ["a=fmtp:127 profile-level-id=42e01f"])
        too_many_lines = good + "".join(f"m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:x{i}\r\n" for i in range(8))
        candidate = "a=candidate:1 1 udp 2130706431 192.0.2.{n} 9 typ host"
        too_many_candidates = _with_lines(good, "m=video", [candidate.format(n=n) for n in range(40)])
        huge = _with_lines(good, "m=video", ["a=x-padding:" + "x" * 40_000])
        for offer, status, code in (
            (orphan_fmtp, 400, "invalid_sdp"),
            (too_many_lines, 400, "invalid_sdp"),
            (too_many_candidates, 400, "invalid_sdp"),
            (huge, 413, "payload_too_large"),
        ):
            for path, token in ((whep, None), (whip, host["token"])):
                response = await rtc_api.client.post(
                    path,
                    data=offer.encode(),
                    headers={"Content-Type": "application/sdp"}
                    | ({"Authorization": f"Bearer {token}"} if token else {}),
                )
                body = await response.json()
                assert (response.status, body["error"]["code"]) == (status, code), (path, body)
        await _sdp(rtc_api, whep, good)  # the server is fine and still serves a good offer
    finally:
        await rtc.close(viewer)
        await rtc.close(first)


async def test_options_and_cors(rtc_api: Api) -> None:
    _, stream = await _show(rtc_api)
    for path in (f"/api/streams/{stream['id']}/whip", f"/api/streams/{stream['id']}/whep"):
        response = await rtc_api.client.options(path)  # a WHIP client's probe: no Origin
        assert response.status == 204
        assert "POST" in response.headers["Allow"] and response.headers["Accept-Post"] == "application/sdp"
        response = await rtc_api.client.options(
            path,
            headers={
                "Origin": "https://shop.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
    response = await rtc_api.client.options(f"/api/streams/{stream['id']}/whep/some-session")
    assert response.status == 204 and "DELETE" in response.headers["Allow"]


async def test_viewers_are_sent_by_the_lean_path_with_sender_reports_and_retransmission(
    rtc_api: Api,
) -> None:
    """The relay's DirectSender (streaming/hooks_send.py) sends every packet, keeps the counts the
    sender's RTCP reports carry, and answers a NACK from its own history (RTX when negotiated)."""
    host, stream = await _show(rtc_api)
    pub, _ = await publish(rtc_api, host, stream)
    viewer: Any = None
    got: rtc.Received | None = None
    try:
        viewer, got, _ = await watch(rtc_api, stream)
        await rtc.wait_for(lambda: len(got.video) >= 10 and got.audio >= 10, 10, "frames at the viewer")
        (peer,) = rtc_api.client.app[SHOW].relay.relays[stream["id"]].viewers.values()
        senders = {t.sender.track: t.sender for t in peer.pc.getTransceivers() if t.sender.track}
        assert len(peer.tracks) == 2
        for track in peer.tracks:
            direct = track.direct
            assert direct is not None and direct.sent > 0, track.kind
            sender = senders[track]
            # what the RTCP SR reports (aiortc keeps the counts in name-mangled privates)
            assert sender._RTCRtpSender__packet_count == direct.sent  # type: ignore[attr-defined]
            assert sender._RTCRtpSender__octet_count > 0  # type: ignore[attr-defined]

        # The viewer gets sender reports for both streams with the relay's packet counts.
        async def reported() -> int:
            count = 0
            for transceiver in viewer.getTransceivers():
                stats = await transceiver.receiver.getStats()
                count += sum(1 for s in stats.values() if s.type == "remote-outbound-rtp" and s.packetsSent)
            return count

        deadline = time.monotonic() + 5
        while await reported() < 2:
            assert time.monotonic() < deadline, "no sender report at the viewer"
            await asyncio.sleep(0.1)
        # A NACK is answered from the relay's history, through the DTLS transport's RTP path.
        video = next(t for t in peer.tracks if t.kind == "video")
        assert video.direct is not None
        sender = senders[video]
        sent: list[bytes] = []
        transport = sender.transport

        async def record(data: bytes) -> None:
            sent.append(data)

        transport._send_rtp = record  # type: ignore[method-assign]
        try:
            lost = (video.direct.sequence_number - 1) & 0xFFFF
            await sender._retransmit(lost)
            await sender._retransmit((lost + 1) & 0xFFFF)  # not sent yet: nothing to resend
        finally:
            del transport._send_rtp
        assert len(sent) == 1
        packet = RtpPacket.parse(sent[0])
        rtx = sender._RTCRtpSender__rtx_payload_type  # type: ignore[attr-defined]
        if rtx is not None:
            assert packet.payload_type == rtx and packet.ssrc == sender._rtx_ssrc
            assert int.from_bytes(packet.payload[:2], "big") == lost
        else:
            assert packet.ssrc == sender._ssrc and packet.sequence_number == lost
    finally:
        if viewer is not None:
            await rtc.close(viewer, got)
        await rtc.close(pub)


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: list[tuple[bytes, Any]] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.append((data, addr))


def _sdp_value(sdp: str, prefix: str) -> str:
    return next(line[len(prefix) :] for line in sdp.splitlines() if line.startswith(prefix))


async def test_ice_talks_only_with_the_offered_loopback_address(rtc_api: Api) -> None:
    """A peer on this machine offers its other addresses too (a browser offers every
    interface): the relay never sends them a check, and what comes from them is dropped, a
    valid STUN request included. The only pair that forms is 127.0.0.1 <-> 127.0.0.1."""
    host, stream = await _show(rtc_api)
    loop = asyncio.get_running_loop()
    # 127.0.0.2 is loopback too, so this test talks to nothing off the machine either.
    stranger_transport, stranger = await loop.create_datagram_endpoint(_Inbox, local_addr=("127.0.0.2", 0))
    control_transport, control = await loop.create_datagram_endpoint(_Inbox, local_addr=("127.0.0.1", 0))
    pub = rtc.publisher()
    try:
        offer = await rtc.offer(pub)
        port = stranger_transport.get_extra_info("sockname")[1]
        # The stranger's candidate outranks the real one: ICE would check it first.
        stranger_line = f"a=candidate:9 1 udp 2130706431 127.0.0.2 {port} typ host"
        offer = _with_lines(offer, "a=candidate:", [stranger_line])
        _, answer = await _sdp(rtc_api, f"/api/streams/{stream['id']}/whip", offer, host["token"])
        await rtc.accept(pub, answer)
        await wait_state(rtc_api, stream, "live")

        request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        request.attributes["USERNAME"] = (
            f"{_sdp_value(answer, 'a=ice-ufrag:')}:{_sdp_value(offer, 'a=ice-ufrag:')}"
        )
        request.attributes["PRIORITY"] = 1853824767
        request.attributes["ICE-CONTROLLING"] = 1
        request.add_message_integrity(_sdp_value(answer, "a=ice-pwd:").encode())
        request.add_fingerprint()
        relay_port = int(candidates(answer)[0].split()[5])
        dropped = hooks_ice.dropped
        stranger_transport.sendto(bytes(request), ("127.0.0.1", relay_port))
        control_transport.sendto(bytes(request), ("127.0.0.1", relay_port))
        await rtc.wait_for(lambda: control.got, 3, "the relay's answer to a loopback request")
        answered = stun.parse_message(control.got[0][0])
        assert answered.message_class is stun.Class.RESPONSE  # the request itself was valid
        await asyncio.sleep(0.5)
        assert stranger.got == [] and hooks_ice.dropped > dropped
        _, metrics = await rtc_api.call("GET", "/metrics", expect=200)
        (shown,) = [
            line.split()[1]
            for line in metrics.splitlines()
            if line.startswith("livecart_ice_datagrams_dropped ")
        ]
        assert float(shown) > dropped  # operators see it too
        (peer,) = [r.publisher for r in rtc_api.client.app[SHOW].relay.relays.values()]
        assert peer is not None
        for transceiver in peer.pc.getTransceivers():
            ice = transceiver.receiver.transport.transport.iceGatherer._connection
            pairs = [(p.local_candidate.host, p.remote_candidate.host) for p in ice._nominated.values()]
            assert pairs and set(pairs) == {("127.0.0.1", "127.0.0.1")}, pairs
            assert all(p.remote_candidate.host != "127.0.0.2" for p in ice._check_list)
    finally:
        await rtc.close(pub)
        stranger_transport.close()
        control_transport.close()
