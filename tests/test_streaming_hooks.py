"""The aiortc/aioice internals streaming/hooks.py relies on are where it expects them; an upgrade
that moves one fails here, loudly, instead of silently decoding every frame again."""

from __future__ import annotations

from fractions import Fraction

import aioice.ice
import aiortc
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from streaming import hooks


def test_pinned_versions() -> None:
    assert aiortc.__version__ == "1.16.0"
    assert aioice.__version__ == "0.13.0"


def test_internals_are_where_the_hooks_expect_them() -> None:
    assert hooks.check() == []


def test_passthrough_is_only_for_marked_codecs() -> None:
    hooks.install(("127.0.0.1",))
    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
    plain = aiortc.rtcrtpreceiver.get_decoder(vp8)
    assert type(plain) is type(get_decoder(vp8))  # an unmarked receiver really decodes
    setattr(vp8, hooks._PASSTHROUGH, True)  # what hooks.mark_passthrough does
    decoder = aiortc.rtcrtpreceiver.get_decoder(vp8)
    assert isinstance(decoder, hooks.PassthroughDecoder)
    (packet,) = decoder.decode(JitterFrame(b"\x10\x02\x00\x9d\x01\x2a", 3000))  # VP8 key frame tag
    assert bytes(packet) == b"\x10\x02\x00\x9d\x01\x2a" and packet.pts == 3000
    assert packet.time_base == Fraction(1, 90000) and packet.is_keyframe
    (delta,) = decoder.decode(JitterFrame(b"\x31\x02\x00", 6000))
    assert not delta.is_keyframe
    opus = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=96)
    assert not isinstance(aiortc.rtcrtpsender.get_encoder(opus), hooks.PrepackedEncoder)
    setattr(opus, hooks._PREPACKED, True)  # what hooks.mark_prepacked does
    assert isinstance(aiortc.rtcrtpsender.get_encoder(opus), hooks.PrepackedEncoder)


def test_h264_keyframes_are_found() -> None:
    idr = b"\x00\x00\x00\x01\x67\x42\xe0\x1f" + b"\x00\x00\x00\x01\x68\xce" + b"\x00\x00\x01\x65\x88"
    assert hooks.is_keyframe("H264", idr)
    assert not hooks.is_keyframe("H264", b"\x00\x00\x00\x01\x41\x9a\x00")
    assert hooks.is_keyframe("OPUS", b"\xfc")


def test_only_the_configured_addresses_are_offered() -> None:
    hooks.install(("127.0.0.1",))
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]
    assert aioice.ice.get_host_addresses(use_ipv4=False, use_ipv6=True) == []
