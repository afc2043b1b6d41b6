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
import struct
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any, Protocol

import aioice.ice
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import av
from aiortc import RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver, clock
from aiortc.codecs.base import Decoder, Encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensions, HeaderExtensionsMap, RtpPacket, wrap_rtx
from aiortc.utils import random16, random32, uint16_add

from streaming import hooks_ice

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


class SendFrame(Protocol):
    """What `DirectSender.send` reads of a relay frame (streaming.relay.RelayFrame)."""

    payloads: list[bytes]
    timestamp: int
    octets: int
    ext_cache: dict[bytes, bytes]


_pack_header = struct.Struct("!BBHLL").pack
# Datagrams the asyncio transport may hold (it buffers only when the socket would block) before
# the viewer counts as behind.
MAX_BUFFERED_BYTES = 256 * 1024


class DirectSender:
    """The lean send step of one relay viewer's RTCRtpSender, run by the relay once per frame.

    What `_run_rtp` does per packet, minus its per-packet objects and wake-ups: same payload type,
    SSRC, random initial sequence number and timestamp origin, marker on a frame's last packet,
    the same header extensions (mid, abs-send-time: computed once per frame and shared by every
    viewer with the same extension ids and mid), then SRTP and one datagram. The sender's own
    `_run_rtp` task stays parked on the (empty) track and ends when the track stops, as before.
    """

    def __init__(self, transceiver: RTCRtpTransceiver) -> None:
        sender = transceiver.sender
        self._transceiver = transceiver
        self._sender = sender
        self._pt = 0
        self._ssrc = sender._ssrc
        self.sequence_number = random16()
        self._origin = random32()
        self._history: list[tuple[int, int, int, bytes] | None] = [None] * RTP_HISTORY_SIZE
        self._dtls: RTCDtlsTransport | None = None
        self._protect: Callable[[bytes], bytes] | None = None
        self._transport: Any = None
        self._addr: Any = None
        self._map: HeaderExtensionsMap | None = None
        self._mid: str | None = None
        self._ext_key = b""
        self.sent = 0
        sender._retransmit = self._retransmit  # type: ignore[method-assign]

    def ready(self) -> bool:
        """Whether the sender has started and its transport is connected (binds on first success)."""
        dtls = self._dtls
        if dtls is not None:
            return dtls._state is State.CONNECTED
        sender = self._sender
        if not getattr(sender, "_RTCRtpSender__started", False):
            return False
        dtls = sender.transport
        if dtls._state is not State.CONNECTED:
            return False
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None:
            return False
        self._protect = dtls._tx_srtp.protect
        self._transport = pair.protocol.transport
        self._addr = pair.remote_addr
        # the payload type `send()` got: RTCPeerConnection.__localRtp passes transceiver._codecs
        payload_type = negotiated_codecs(self._transceiver)[0].payloadType
        assert payload_type is not None
        self._pt = payload_type
        self._map = sender._RTCRtpSender__rtp_header_extensions_map  # type: ignore[attr-defined]
        self._mid = sender._RTCRtpSender__mid  # type: ignore[attr-defined]
        self._ext_key = self._extension_block(0)
        self._dtls = dtls
        return True

    def _extension_block(self, abs_send_time: int) -> bytes:
        assert self._map is not None
        profile, value = self._map.set(HeaderExtensions(mid=self._mid, abs_send_time=abs_send_time))
        if not value:
            return b""
        return struct.pack("!HH", profile, len(value) >> 2) + value

    def behind(self) -> bool:
        """The socket would block and the transport is buffering: this viewer cannot keep up."""
        transport = self._transport
        return transport is not None and transport.get_write_buffer_size() > MAX_BUFFERED_BYTES

    def send(self, frame: SendFrame, abs_send_time: int, ntp_time: int) -> None:
        """Send one frame's packets. Call only when `ready()`."""
        key = self._ext_key
        ext = frame.ext_cache.get(key)
        if ext is None:
            ext = frame.ext_cache[key] = self._extension_block(abs_send_time)
        first = 0x90 if ext else 0x80
        pt = self._pt
        ssrc = self._ssrc
        timestamp = (self._origin + frame.timestamp) & 0xFFFFFFFF
        seq = self.sequence_number
        history = self._history
        protect = self._protect
        sendto = self._transport.sendto
        addr = self._addr
        assert protect is not None
        payloads = frame.payloads
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            marker = 0x80 if i == last else 0
            history[seq % RTP_HISTORY_SIZE] = (seq, timestamp, marker, payload)
            sendto(protect(_pack_header(first, marker | pt, seq, timestamp, ssrc) + ext + payload), addr)
            seq = (seq + 1) & 0xFFFF
        self.sequence_number = seq
        self.sent += last + 1
        # What the sender's RTCP task puts in its sender reports.
        sender = self._sender
        sender._RTCRtpSender__ntp_timestamp = ntp_time  # type: ignore[attr-defined]
        sender._RTCRtpSender__rtp_timestamp = timestamp  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count += frame.octets  # type: ignore[attr-defined]
        sender._RTCRtpSender__packet_count += last + 1  # type: ignore[attr-defined]

    async def _retransmit(self, sequence_number: int) -> None:
        """A NACKed packet again, as `RTCRtpSender._retransmit` does (RTX when negotiated)."""
        entry = self._history[sequence_number % RTP_HISTORY_SIZE]
        if entry is None or entry[0] != sequence_number or self._map is None:
            return
        seq, timestamp, marker, payload = entry
        packet = RtpPacket(
            payload_type=self._pt, marker=1 if marker else 0, sequence_number=seq, timestamp=timestamp
        )
        packet.ssrc = self._ssrc
        packet.payload = payload
        packet.extensions.mid = self._mid
        packet.extensions.abs_send_time = (clock.current_ntp_time() >> 14) & 0x00FFFFFF
        sender = self._sender
        rtx_payload_type = sender._RTCRtpSender__rtx_payload_type  # type: ignore[attr-defined]
        if rtx_payload_type is not None:
            packet = wrap_rtx(
                packet,
                payload_type=rtx_payload_type,
                sequence_number=sender._RTCRtpSender__rtx_sequence_number,  # type: ignore[attr-defined]
                ssrc=sender._rtx_ssrc,
            )
            rtx_sequence = sender._RTCRtpSender__rtx_sequence_number  # type: ignore[attr-defined]
            sender._RTCRtpSender__rtx_sequence_number = uint16_add(rtx_sequence, 1)  # type: ignore[attr-defined]
        await sender.transport._send_rtp(packet.serialize(self._map))


def abs_send_time(ntp_time: int) -> int:
    """The abs-send-time header extension's value for an NTP time (what `_run_rtp` writes)."""
    return (ntp_time >> 14) & 0x00FFFFFF


def ntp_now() -> int:
    return clock.current_ntp_time()


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
    (RTCRtpSender, "_retransmit", ("self", "sequence_number")),
    (RTCRtpSender, "_run_rtp", ("self", "codec")),
    (RTCRtpSender, "_run_rtcp", ("self",)),
    (RTCDtlsTransport, "_send_rtp", ("self", "data")),
    (HeaderExtensionsMap, "set", ("self", "values")),
    (aioice.ice.Connection, "sendto", ("self", "data", "component")),
    (aioice.ice.StunProtocol, "send_data", ("self", "data", "addr")),
    (clock, "current_ntp_time", ()),
]

# Source fragments DirectSender mirrors or relies on: (function, fragment).
SOURCE: list[tuple[Any, str]] = [
    # _run_rtp's packet: payload type, marker on the last payload, ssrc, mid + abs-send-time.
    (RTCRtpSender._run_rtp, "payload_type=codec.payloadType"),
    (RTCRtpSender._run_rtp, "packet.marker = (i == len(enc_frame.payloads) - 1) and 1 or 0"),
    (RTCRtpSender._run_rtp, "packet.extensions.mid = self.__mid"),
    (RTCRtpSender._run_rtp, "clock.current_ntp_time() >> 14"),
    (RTCRtpSender._run_rtp, "self.__octet_count += len(payload)"),
    (RTCRtpSender._run_rtp, "self.__packet_count += 1"),
    (RTCRtpSender._run_rtp, "self.__rtp_timestamp = packet.timestamp"),
    (RTCRtpSender._run_rtp, "self.__ntp_timestamp = clock.current_ntp_time()"),
    # the RTCP task reads the counters DirectSender keeps
    (RTCRtpSender._run_rtcp, "packet_count=self.__packet_count"),
    (RTCRtpSender._run_rtcp, "rtp_timestamp=self.__rtp_timestamp"),
    # NACKs are answered through self._retransmit (replaced per instance)
    (RTCRtpSender._handle_rtcp_packet, "await self._retransmit(seq)"),
    (RTCRtpSender._retransmit, "self.__rtx_payload_type"),
    (RTCRtpSender._retransmit, "self.__rtx_sequence_number"),
    (RTCRtpSender._retransmit, "ssrc=self._rtx_ssrc"),
    (RTCRtpSender.send, "self.__started = True"),
    (aiortc.RTCPeerConnection._RTCPeerConnection__localRtp, "codecs=transceiver._codecs"),  # type: ignore[attr-defined]
    (aiortc.RTCIceTransport.__init__, "self._connection = gatherer._connection"),
    (RTCRtpSender.send, "self.__rtp_header_extensions_map.configure(parameters)"),
    (RTCRtpSender.send, "self.__mid = parameters.muxId"),
    # the RTP path of the DTLS transport: SRTP protect, then the ICE transport
    (RTCDtlsTransport._send_rtp, "data = self._tx_srtp.protect(data)"),
    (RTCDtlsTransport._send_rtp, "if self._state != State.CONNECTED"),
    # ... whose ICE connection sends on the nominated pair's protocol, which writes one datagram
    (aioice.ice.Connection.sendto, "active_pair = self._nominated.get(component)"),
    (aioice.ice.Connection.sendto, "await active_pair.protocol.send_data(data, active_pair.remote_addr)"),
    (aioice.ice.StunProtocol.send_data, "self.transport.sendto(data, addr)"),
]


def check() -> list[str]:
    """Problems with the internals the hooks use; empty when all is where it was."""
    problems = []
    originals: dict[tuple[object, str], object] = {
        (aiortc.rtcrtpreceiver, "get_decoder"): _original_get_decoder,
        (aiortc.rtcrtpsender, "get_encoder"): _original_get_encoder,
        **hooks_ice.ORIGINALS,
    }
    for owner, name, params in EXPECTED + hooks_ice.EXPECTED:
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
    for function, fragment in SOURCE:
        if fragment not in inspect.getsource(function):
            problems.append(f"{function.__qualname__} no longer contains {fragment!r}")
    if not hasattr(RTCRtpTransceiver(kind="audio", sender=None, receiver=None), "_codecs"):  # type: ignore[arg-type]
        problems.append("RTCRtpTransceiver._codecs is gone")
    return problems
