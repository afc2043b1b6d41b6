"""Every reach into aiortc/aioice internals, in one place (both are pinned exactly in pyproject).

Why each hook exists:
- aiortc decodes every received track and encodes again for every sender. The relay wants the
  *encoded* frames: the receiver's decoder thread calls the module-level `get_decoder(codec)`
  imported into `aiortc.rtcrtpreceiver`; for codecs marked as passthrough it gets a decoder that
  hands back the depayloaded frame as an `av.Packet` instead of pictures.
- `RTCRtpSender` packs a non-`Frame` item with `encoder.pack(item)` (the `MediaPlayer(decode=False)`
  path); for codecs marked as prepacked, `get_encoder` (imported into `aiortc.rtcrtpsender`)
  returns an encoder whose `pack` returns payloads the relay packetized once for every viewer.
- A viewer's PLI/FIR reaches `RTCRtpSender._send_keyframe`, which only sets a flag the packet path
  never reads; it is replaced per sender instance so the request reaches the publisher, through
  `RTCRtpReceiver._send_rtcp_pli`.
- The codecs a transceiver negotiated live in `RTCRtpTransceiver._codecs`.
- A relay viewer's packets skip `RTCRtpSender._run_rtp` (one asyncio wake-up, one RtpPacket, one
  header-extension serialization and four coroutine layers per packet per viewer): `DirectSender`
  writes each packet's header with one `struct.pack`, protects it with the DTLS transport's
  `_tx_srtp` and writes it to the nominated ICE pair's datagram transport, once per frame for all
  the frame's packets. It keeps what the sender's RTCP task reads (the mangled `__packet_count`,
  `__octet_count`, `__rtp_timestamp`, `__ntp_timestamp`) and its own retransmission history,
  reached through a per-instance `_retransmit` (NACK, with RTX when negotiated).
- ICE: which local addresses are offered (`LIVECART_ICE_ADDRESSES`; tests: 127.0.0.1 only) and
  which remote addresses a candidate may talk with: streaming/hooks_ice.py.

tests/test_streaming_hooks.py checks every name and signature used here, so an upgrade that
moves one fails loudly instead of silently decoding (or offering the wrong addresses) again.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any, Protocol

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import av
from aiortc import RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs.base import Decoder, Encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from streaming import hooks_ice, hooks_send

_PASSTHROUGH = "_livecart_passthrough"
_PREPACKED = "_livecart_prepacked"

_original_get_decoder = aiortc.rtcrtpreceiver.get_decoder  # type: ignore[attr-defined]
_original_get_encoder = aiortc.rtcrtpsender.get_encoder  # type: ignore[attr-defined]


class Prepacked(Protocol):
    """What a relay track yields to a prepacked sender: RTP payloads and the RTP timestamp."""

    payloads: list[bytes]
    timestamp: int


def is_keyframe(codec_name: str, data: bytes) -> bool:
    """Whether a depayloaded frame starts a picture on its own (every audio frame does)."""
    if codec_name == "VP8":
        # RFC 6386 9.1: the frame tag's lowest bit is 0 for a key frame.
        return bool(data) and not data[0] & 0x01
    if codec_name == "H264":
        # Annex-B (what aiortc's depayloader emits): an IDR slice (5) or SPS (7) NAL unit.
        pos = data.find(b"\x00\x00\x01")
        while pos != -1 and pos + 3 < len(data):
            if data[pos + 3] & 0x1F in (5, 7):
                return True
            pos = data.find(b"\x00\x00\x01", pos + 3)
        return False
    return True


class PassthroughDecoder(Decoder):
    """Returns the encoded frame itself: pts = RTP timestamp (from 0), time base 1/clock rate."""

    def __init__(self, codec: RTCRtpCodecParameters) -> None:
        self.name = codec.name.upper()
        self.time_base = Fraction(1, codec.clockRate)

    def decode(self, encoded_frame: JitterFrame) -> list[Any]:
        packet = av.Packet(encoded_frame.data)
        packet.pts = encoded_frame.timestamp
        packet.time_base = self.time_base
        packet.is_keyframe = is_keyframe(self.name, encoded_frame.data)
        return [packet]


class PrepackedEncoder(Encoder):
    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise TypeError("a prepacked sender only sends frames the relay already packetized")

    def pack(self, packet: Any) -> tuple[list[bytes], int]:
        item: Prepacked = packet
        return item.payloads, item.timestamp


def _get_decoder(codec: RTCRtpCodecParameters) -> Decoder:
    if getattr(codec, _PASSTHROUGH, False):
        return PassthroughDecoder(codec)
    return _original_get_decoder(codec)


def _get_encoder(codec: RTCRtpCodecParameters) -> Encoder:
    if getattr(codec, _PREPACKED, False):
        return PrepackedEncoder()
    return _original_get_encoder(codec)


def install(addresses: Sequence[str] = ()) -> None:
    """Put the hooks in place (idempotent). `addresses`: the only local addresses ICE may offer,
    loopback included; empty = aioice's own choice. Process-wide, like aioice's functions."""
    aiortc.rtcrtpreceiver.get_decoder = _get_decoder  # type: ignore[attr-defined]
    aiortc.rtcrtpsender.get_encoder = _get_encoder  # type: ignore[attr-defined]
    hooks_ice.install(addresses)


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """The codecs agreed for this transceiver, in preference order (RTX included)."""
    codecs: list[RTCRtpCodecParameters] = transceiver._codecs
    return codecs


def mark_passthrough(transceiver: RTCRtpTransceiver) -> None:
    """Call after setRemoteDescription: this receiver yields encoded frames, not pictures."""
    for codec in negotiated_codecs(transceiver):
        setattr(codec, _PASSTHROUGH, True)


def mark_prepacked(transceiver: RTCRtpTransceiver) -> None:
    """Call after setRemoteDescription: this sender sends what the relay packetized."""
    for codec in negotiated_codecs(transceiver):
        setattr(codec, _PREPACKED, True)


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Route the viewer's PLI/FIR to `callback` instead of a flag nobody reads."""
    sender._send_keyframe = callback  # type: ignore[method-assign]


async def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    await receiver._send_rtcp_pli(media_ssrc)


# What the hooks rely on, checked by the test suite: (object, attribute, parameter names or None).
EXPECTED: list[tuple[object, str, tuple[str, ...] | None]] = [
    (aiortc.rtcrtpreceiver, "get_decoder", ("codec",)),
    (aiortc.rtcrtpreceiver, "decoder_worker", ("loop", "input_q", "output_q", "decode_error")),
    (aiortc.rtcrtpsender, "get_encoder", ("codec",)),
    (RTCRtpSender, "_send_keyframe", ("self",)),
    (RTCRtpSender, "_next_encoded_frame", ("self", "codec")),
    (RTCRtpReceiver, "_send_rtcp_pli", ("self", "media_ssrc")),
    (Encoder, "pack", ("self", "packet")),
    (Decoder, "decode", ("self", "encoded_frame")),
    (JitterFrame, "__init__", ("self", "data", "timestamp")),
]


def check() -> list[str]:
    """Problems with the internals the hooks use; empty when all is where it was."""
    problems = []
    originals: dict[tuple[object, str], object] = {
        (aiortc.rtcrtpreceiver, "get_decoder"): _original_get_decoder,
        (aiortc.rtcrtpsender, "get_encoder"): _original_get_encoder,
        **hooks_ice.ORIGINALS,
    }
    for owner, name, params in EXPECTED + hooks_ice.EXPECTED + hooks_send.EXPECTED:
        target = originals.get((owner, name)) or getattr(owner, name, None)
        if target is None:
            problems.append(f"{getattr(owner, '__name__', owner)}.{name} is gone")
            continue
        if params is not None:
            found = tuple(inspect.signature(target).parameters)  # type: ignore[arg-type]
            if found != params:
                problems.append(f"{getattr(owner, '__name__', owner)}.{name}{found} != {params}")
    # The sender must still pack non-Frame items and the receiver must still decode in a thread
    # that looks up get_decoder in its module namespace.
    if "encoder.pack(data)" not in inspect.getsource(RTCRtpSender._next_encoded_frame):
        problems.append("RTCRtpSender._next_encoded_frame no longer packs pre-encoded data")
    if "get_decoder(codec)" not in inspect.getsource(aiortc.rtcrtpreceiver.decoder_worker):
        problems.append("decoder_worker no longer calls get_decoder(codec)")
    problems += hooks_ice.check()
    for function, fragment in hooks_send.SOURCE:
        if fragment not in inspect.getsource(function):
            problems.append(f"{function.__qualname__} no longer contains {fragment!r}")
    if not hasattr(RTCRtpTransceiver(kind="audio", sender=None, receiver=None), "_codecs"):  # type: ignore[arg-type]
        problems.append("RTCRtpTransceiver._codecs is gone")
    return problems
