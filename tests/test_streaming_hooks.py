"""The aiortc/aioice internals streaming/hooks.py relies on are where it expects them; an upgrade
that moves one fails here, loudly, instead of silently decoding every frame again."""

from __future__ import annotations

import asyncio
import importlib.metadata
import struct
import time
from fractions import Fraction

import aioice.ice
import aiortc
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import pytest
import uvloop
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from streaming import hooks, hooks_ice, hooks_send


def test_pinned_versions() -> None:
    assert aiortc.__version__ == "1.16.0"
    assert aioice.__version__ == "0.13.0"
    assert importlib.metadata.version("pylibsrtp") == "1.0.0"


def test_internals_are_where_the_hooks_expect_them() -> None:
    assert hooks.check() == []


def test_passthrough_is_only_for_marked_codecs() -> None:
    hooks.install(("127.0.0.1",))
    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
    plain = aiortc.rtcrtpreceiver.get_decoder(vp8)  # type: ignore[attr-defined]
    assert type(plain) is type(get_decoder(vp8))  # an unmarked receiver really decodes
    setattr(vp8, hooks._PASSTHROUGH, True)  # what hooks.mark_passthrough does
    decoder = aiortc.rtcrtpreceiver.get_decoder(vp8)  # type: ignore[attr-defined]
    assert isinstance(decoder, hooks.PassthroughDecoder)
    (packet,) = decoder.decode(JitterFrame(b"\x10\x02\x00\x9d\x01\x2a", 3000))  # VP8 key frame tag
    assert bytes(packet) == b"\x10\x02\x00\x9d\x01\x2a" and packet.pts == 3000
    assert packet.time_base == Fraction(1, 90000) and packet.is_keyframe
    (delta,) = decoder.decode(JitterFrame(b"\x31\x02\x00", 6000))
    assert not delta.is_keyframe
    opus = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=96)
    assert not isinstance(aiortc.rtcrtpsender.get_encoder(opus), hooks.PrepackedEncoder)  # type: ignore[attr-defined]
    setattr(opus, hooks._PREPACKED, True)  # what hooks.mark_prepacked does
    assert isinstance(aiortc.rtcrtpsender.get_encoder(opus), hooks.PrepackedEncoder)  # type: ignore[attr-defined]


def test_h264_keyframes_are_found() -> None:
    idr = b"\x00\x00\x00\x01\x67\x42\xe0\x1f" + b"\x00\x00\x00\x01\x68\xce" + b"\x00\x00\x01\x65\x88"
    assert hooks.is_keyframe("H264", idr)
    assert not hooks.is_keyframe("H264", b"\x00\x00\x00\x01\x41\x9a\x00")
    assert hooks.is_keyframe("OPUS", b"\xfc")


def test_only_the_configured_addresses_are_offered() -> None:
    hooks.install(("127.0.0.1",))
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]
    assert aioice.ice.get_host_addresses(use_ipv4=False, use_ipv6=True) == []


def test_direct_sender_writes_what_run_rtp_would() -> None:
    """DirectSender's packets are byte for byte those of RTCRtpSender._run_rtp (same header
    fields and header extensions), and it keeps the counts the sender's RTCP reports carry."""
    from types import SimpleNamespace

    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
    from aiortc.rtp import HeaderExtensionsMap, RtpPacket

    sender = SimpleNamespace(
        _ssrc=0x11223344,
        _RTCRtpSender__packet_count=0,
        _RTCRtpSender__octet_count=0,
        _RTCRtpSender__rtp_timestamp=0,
        _RTCRtpSender__ntp_timestamp=0,
    )
    direct = hooks_send.DirectSender(SimpleNamespace(sender=sender))  # type: ignore[arg-type]
    assert sender._retransmit == direct._retransmit  # NACKs reach its history
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=4, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
                RTCRtpHeaderExtensionParameters(
                    id=2, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
                ),
            ]
        )
    )
    datagrams: list[bytes] = []
    direct._pt, direct._map, direct._mid = 96, extensions, "1"
    direct._protect = lambda data: data  # SRTP aside
    direct._transport = SimpleNamespace(sendto=lambda data, addr: datagrams.append(data))
    direct._ext_key = direct._extension_block(0)
    frame = SimpleNamespace(payloads=[b"abc", b"defg"], timestamp=3000, octets=7, ext_cache={})
    ntp = hooks_send.ntp_now()
    first_seq = direct.sequence_number
    direct.send(frame, hooks_send.abs_send_time(ntp), ntp)
    expected = []
    for i, payload in enumerate(frame.payloads):
        packet = RtpPacket(
            payload_type=96,
            marker=int(i == 1),
            sequence_number=(first_seq + i) & 0xFFFF,
            timestamp=(direct._origin + 3000) & 0xFFFFFFFF,
            ssrc=0x11223344,
            payload=payload,
        )
        packet.extensions.mid = "1"
        packet.extensions.abs_send_time = hooks_send.abs_send_time(ntp)
        expected.append(packet.serialize(extensions))
    assert datagrams == expected
    assert sender._RTCRtpSender__packet_count == 2 and sender._RTCRtpSender__octet_count == 7
    assert sender._RTCRtpSender__rtp_timestamp == (direct._origin + 3000) & 0xFFFFFFFF
    assert sender._RTCRtpSender__ntp_timestamp == ntp
    assert direct.sequence_number == (first_seq + 2) & 0xFFFF


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_a_frame_goes_out_in_batches_and_arrives_as_the_same_datagrams_in_order(loop_kind: str) -> None:
    """On a real UDP socket (the server runs on uvloop, tests on asyncio's loop), a frame's
    equal-sized packets leave in one sendmsg (UDP GSO) and the receiver gets exactly the datagrams
    the per-packet path would send, in order: runs cut where sizes change, at 64 segments and at
    64 KB (a big keyframe)."""
    loop = uvloop.new_event_loop() if loop_kind == "uvloop" else asyncio.new_event_loop()
    try:
        loop.run_until_complete(_batched_frames(loop))
    finally:
        loop.close()


async def _batched_frames(loop: asyncio.AbstractEventLoop) -> None:
    import socket
    from types import SimpleNamespace

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    receiver.setblocking(False)
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    sender = SimpleNamespace(
        _ssrc=1, _RTCRtpSender__packet_count=0, _RTCRtpSender__octet_count=0,
        _RTCRtpSender__rtp_timestamp=0, _RTCRtpSender__ntp_timestamp=0,
    )  # fmt: skip
    direct = hooks_send.DirectSender(SimpleNamespace(sender=sender))  # type: ignore[arg-type]
    direct._pt, direct._protect, direct._addr = 96, (lambda data: data), receiver.getsockname()
    direct._transport, direct._sock = transport, hooks_send._udp_socket(transport)
    assert direct._sock is not None  # Linux: a plain UDP socket to batch on
    try:
        frames = [
            [b"a" * 1200] * 6 + [b"b" * 300],  # a delta frame: one batch
            [b"c" * 1200] * 70 + [b"d" * 10],  # a keyframe: cut at 64 segments / 64 KB
            [b"e" * 900, b"f" * 900, b"g" * 500, b"h" * 900, b"i" * 1200, b"j" * 30],
            [b"k" * 40],  # audio: one datagram
        ]
        batches = hooks_send.gso.batches
        expected = []
        for n, payloads in enumerate(frames):
            seq = direct.sequence_number
            frame = SimpleNamespace(payloads=payloads, timestamp=n, octets=0, ext_cache={b"": b""})
            direct.send(frame, 0, 0)  # no header extensions negotiated
            for i, payload in enumerate(payloads):
                marker = 0x80 if i == len(payloads) - 1 else 0
                stamp = (direct._origin + n) & 0xFFFFFFFF
                expected.append(
                    struct.pack("!BBHLL", 0x80, marker | 96, (seq + i) & 0xFFFF, stamp, 1) + payload
                )
        assert hooks_send.gso.batches - batches >= 5  # fewer system calls than datagrams
        got: list[bytes] = []
        deadline = time.monotonic() + 5
        while len(got) < len(expected) and time.monotonic() < deadline:
            try:
                got.append(receiver.recv(2048))
            except BlockingIOError:
                await asyncio.sleep(0.01)
        assert got == expected
    finally:
        direct.close()
        transport.close()
        receiver.close()


async def test_a_viewer_whose_socket_is_full_skips_to_the_next_keyframe() -> None:
    """With the lean send path the bounded queue is the socket's: a viewer whose datagram
    transport is buffering drops frames until the next keyframe and asks for one."""
    from streaming.relay import Feed, KeyframeRequests, RelayFrame

    asked = 0

    async def ask() -> None:
        nonlocal asked
        asked += 1

    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
    feed = Feed("video", vp8, KeyframeRequests(ask, interval=0.0))
    track = feed.track()
    sent: list[int] = []

    class Direct:
        full = False

        def ready(self) -> bool:
            return True

        def behind(self) -> bool:
            return self.full

        def send(self, frame: RelayFrame, abs_send_time: int, ntp_time: int) -> None:
            sent.append(frame.timestamp)

        def close(self) -> None:
            pass

    direct = Direct()
    track.direct = direct  # type: ignore[assignment]
    track.start()
    track.push(RelayFrame([b"d"], 1, False))  # before the first keyframe: not sent
    track.push(RelayFrame([b"k"], 2, True))
    track.push(RelayFrame([b"d"], 3, False))
    direct.full = True
    track.push(RelayFrame([b"d"], 4, False))
    direct.full = False
    track.push(RelayFrame([b"d"], 5, False))  # still waiting for a keyframe
    track.push(RelayFrame([b"k"], 6, True))
    assert sent == [2, 3, 6]
    assert track.skips == 1
    await asyncio.sleep(0.01)
    assert asked == 2  # one at start, one on falling behind
    await feed.close()


def test_mdns_candidates_are_dropped_from_offers() -> None:
    from streaming.peers import without_mdns_candidates

    offer = (
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        "a=candidate:1 1 udp 2122260223 5b3c1d2e-9f1a-4c2b-8a7d-1e2f3a4b5c6d.local 51234 typ host\r\n"
        "a=candidate:2 1 udp 2122260223 127.0.0.1 51235 typ host\r\n"
        "a=mid:0\r\n"
    )
    cleaned = without_mdns_candidates(offer)
    assert ".local" not in cleaned
    assert "a=candidate:2 1 udp 2122260223 127.0.0.1 51235 typ host\r\n" in cleaned
    assert cleaned.endswith("a=mid:0\r\n") and cleaned.count("\r\n") == offer.count("\r\n") - 1


def test_a_candidate_talks_only_within_its_scope() -> None:
    hooks.install(("127.0.0.1",))
    assert hooks_ice.in_scope("127.0.0.1", "127.0.0.1")
    assert not hooks_ice.in_scope("127.0.0.1", "127.0.0.2")  # loopback, but not offered
    assert not hooks_ice.in_scope("127.0.0.1", "192.168.1.20")  # this machine's LAN address
    assert not hooks_ice.in_scope("127.0.0.1", "a1b2c3.local")  # an mDNS name
    # a node offering a public address serves the internet, never its own loopback
    assert hooks_ice.in_scope("203.0.113.7", "198.51.100.9")
    assert hooks_ice.in_scope("203.0.113.7", "2001:db8::1")
    assert not hooks_ice.in_scope("203.0.113.7", "127.0.0.1")
    assert not hooks_ice.in_scope("203.0.113.7", "::1")
