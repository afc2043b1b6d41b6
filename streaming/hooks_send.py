"""The send side of streaming/hooks.py: a relay viewer's packets, written without aiortc's
per-packet machinery, a frame's packets to one viewer in as few system calls as the kernel allows.

`DirectSender` replaces what `RTCRtpSender._run_rtp` does per packet (one asyncio wake-up, one
`RtpPacket`, one header-extension serialization and four coroutine layers, then one datagram):
the relay calls it once per frame; it writes each packet's header with one `struct.pack`,
protects it with the DTLS transport's `_tx_srtp` and sends the frame's datagrams to the nominated
ICE pair's address. It keeps what the sender's RTCP task reads (the mangled `__packet_count`,
`__octet_count`, `__rtp_timestamp`, `__ntp_timestamp`) and its own retransmission history,
reached through a per-instance `_retransmit` (NACK, with RTX when negotiated).

Batching (Linux UDP GSO): the packets of a video frame have one size but the last (the
packetizer cuts payloads to one size, the header and SRTP tag are fixed), so they go out in one
`sendmsg` with `UDP_SEGMENT` = that size: one system call and one trip through the IP stack, the
kernel (or the NIC) cuts it into the same datagrams on the wire. It is used only on a plain UDP
socket whose asyncio (or uvloop) transport holds nothing queued, so order is kept; a socket that would block
hands the rest to the transport, which queues as before; a kernel or device that refuses GSO
turns it off for the process and every packet goes by `sendto` as before.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import aioice.ice
import aiortc
from aiortc import RTCRtpSender, RTCRtpTransceiver, clock
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap, RtpPacket, wrap_rtx
from aiortc.utils import random16, random32, uint16_add
from pylibsrtp import Error as SrtpError
from pylibsrtp import Session as SrtpSession
from pylibsrtp import _binding as srtp_binding


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

SRTP_MAX_TRAILER_LEN = 16 + 128  # pylibsrtp's room for the authentication tag and MKI
SOL_UDP = getattr(socket, "SOL_UDP", 17)
UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)  # linux/udp.h
GSO_MAX_SEGMENTS = 64  # UDP_MAX_SEGMENTS of Linux 4.18+ (newer kernels take 128)
GSO_MAX_BYTES = 65_000  # one UDP datagram's payload before segmentation, with room for headers
# The kernel or the device cannot segment: plain sendto from then on.
_GSO_REFUSED = {errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP}


HISTORY_FRAMES = 64  # frames kept for NACKs: ~2 s of video (aiortc keeps 128 packets)


def protector(session: SrtpSession) -> Callable[[bytes], bytes]:
    """`session.protect` without pylibsrtp's per-call checks and allocation: the same libsrtp call
    on the session's own buffer, whose 1,500 bytes bound the packet as they do there. (Shared with
    aiortc's own use of the session, which is safe: both run on the loop's thread, never
    interleaved.)"""
    srtp, cdata, buffer = session._srtp[0], session._cdata, session._buffer
    limit = len(cdata) - SRTP_MAX_TRAILER_LEN
    length = srtp_binding.ffi.new("int *")
    protect = srtp_binding.lib.srtp_protect

    def protected(packet: bytes) -> bytes:
        size = len(packet)
        if size > limit:
            raise ValueError("packet is too long")
        buffer[0:size] = packet
        length[0] = size
        status = protect(srtp, cdata, length)
        if status:
            raise SrtpError(f"srtp_protect failed: {status}")
        return buffer[0 : length[0]]  # type: ignore[no-any-return]

    return protected


class _Gso:
    enabled = sys.platform.startswith("linux")
    batches = 0  # sendmsg calls that carried several packets, since the process started


gso = _Gso()


def _udp_socket(transport: Any) -> socket.socket | None:
    """A socket on the same UDP socket as a datagram transport (asyncio's or uvloop's), to batch
    on: a duplicate of its descriptor (uvloop's stand-in socket cannot sendmsg), closed with the
    sender. None for anything else (a TURN relay's TCP connection, say)."""
    raw = transport.get_extra_info("socket") if gso.enabled else None
    if raw is None or raw.type != socket.SOCK_DGRAM or raw.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    sock = socket.socket(raw.family, raw.type, fileno=os.dup(raw.fileno()))
    sock.setblocking(False)
    return sock


class DirectSender:
    """The lean send step of one relay viewer's RTCRtpSender, run by the relay once per frame.

    What `_run_rtp` does per packet, minus its per-packet objects and wake-ups: same payload type,
    SSRC, random initial sequence number and timestamp origin, marker on a frame's last packet,
    the same header extensions (mid, abs-send-time: computed once per frame and shared by every
    viewer with the same extension ids and mid), then SRTP and the datagrams (batched, see above).
    The sender's own `_run_rtp` task stays parked on the (empty) track and ends when the track
    stops, as before.
    """

    def __init__(self, transceiver: RTCRtpTransceiver) -> None:
        sender = transceiver.sender
        self._transceiver = transceiver
        self._sender = sender
        self._pt = 0
        self._ssrc = sender._ssrc
        self.sequence_number = random16()
        self._origin = random32()
        # per frame sent: (first sequence number, packets, timestamp, payloads), for NACKs
        self._history: list[tuple[int, int, int, list[bytes]] | None] = [None] * HISTORY_FRAMES
        self._frames = 0
        self._dtls: RTCDtlsTransport | None = None
        self._protect: Callable[[bytes], bytes] | None = None
        self._transport: Any = None
        self._sock: socket.socket | None = None
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
        self._protect = protector(dtls._tx_srtp)
        self._transport = pair.protocol.transport
        self._sock = _udp_socket(self._transport)
        if self._sock is not None:
            weakref.finalize(self, self._sock.close)
        self._addr = pair.remote_addr
        # the payload type `send()` got: RTCPeerConnection.__localRtp passes transceiver._codecs
        payload_type = self._transceiver._codecs[0].payloadType
        assert payload_type is not None
        self._pt = payload_type
        self._map = sender._RTCRtpSender__rtp_header_extensions_map  # type: ignore[attr-defined]
        self._mid = sender._RTCRtpSender__mid  # type: ignore[attr-defined]
        self._ext_key = self._extension_block(0)
        self._dtls = dtls
        return True

    def close(self) -> None:
        """The viewer has gone: let go of the batching socket (the transport keeps its own)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

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
        protect = self._protect
        assert protect is not None
        payloads = frame.payloads
        count = len(payloads)
        self._history[self._frames % HISTORY_FRAMES] = (seq, count, timestamp, payloads)
        self._frames += 1
        self.sequence_number = (seq + count) & 0xFFFF
        self.sent += count
        pack, join = _pack_header, b"".join
        if count == 1:  # audio, a small video frame: one datagram, marker set
            packet = protect(join((pack(first, 0x80 | pt, seq, timestamp, ssrc), ext, payloads[0])))
            self._transport.sendto(packet, self._addr)
        else:
            last = count - 1
            datagrams = [
                protect(join((pack(first, pt, (seq + i) & 0xFFFF, timestamp, ssrc), ext, payloads[i])))
                for i in range(last)
            ]
            header = pack(first, 0x80 | pt, (seq + last) & 0xFFFF, timestamp, ssrc)
            datagrams.append(protect(join((header, ext, payloads[last]))))
            if self._sock is not None and not self._transport.get_write_buffer_size():
                self._send_batched(datagrams)
            else:
                sendto, addr = self._transport.sendto, self._addr
                for datagram in datagrams:
                    sendto(datagram, addr)
        # What the sender's RTCP task puts in its sender reports.
        sender = self._sender
        sender._RTCRtpSender__ntp_timestamp = ntp_time  # type: ignore[attr-defined]
        sender._RTCRtpSender__rtp_timestamp = timestamp  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count += frame.octets  # type: ignore[attr-defined]
        sender._RTCRtpSender__packet_count += count  # type: ignore[attr-defined]

    def _send_batched(self, datagrams: list[bytes]) -> None:
        """Runs of equal-sized datagrams (a shorter one may end a run) in one sendmsg each."""
        sock, addr, count = self._sock, self._addr, len(datagrams)
        assert sock is not None
        start = 0
        while start < count:
            size = len(datagrams[start])
            limit = min(count, start + GSO_MAX_SEGMENTS, start + max(1, GSO_MAX_BYTES // size))
            end = start + 1
            while end < limit and len(datagrams[end]) == size:
                end += 1
            if end < limit and len(datagrams[end]) < size:
                end += 1
            try:
                if end - start == 1:
                    sock.sendto(datagrams[start], addr)
                else:
                    segment = ((SOL_UDP, UDP_SEGMENT, size.to_bytes(2, sys.byteorder)),)
                    sock.sendmsg(datagrams[start:end], segment, 0, addr)
                    gso.batches += 1
            except OSError as exc:
                if exc.errno in _GSO_REFUSED and end - start > 1:
                    gso.enabled = False
                    self.close()
                # the transport sends or queues the rest, and reports errors as it always does
                for datagram in datagrams[start:]:
                    self._transport.sendto(datagram, addr)
                return
            start = end

    async def _retransmit(self, sequence_number: int) -> None:
        """A NACKed packet again, as `RTCRtpSender._retransmit` does (RTX when negotiated)."""
        if self._map is None:
            return
        for entry in self._history:
            if entry is not None and (sequence_number - entry[0]) & 0xFFFF < entry[1]:
                break
        else:
            return  # too old, or never sent
        first, count, timestamp, payloads = entry
        index = (sequence_number - first) & 0xFFFF
        payload = payloads[index]
        packet = RtpPacket(
            payload_type=self._pt,
            marker=int(index == count - 1),
            sequence_number=sequence_number,
            timestamp=timestamp,
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


# What DirectSender relies on, checked with the other hooks' by streaming.hooks.check().
EXPECTED: list[tuple[object, str, tuple[str, ...] | None]] = [
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
    # pylibsrtp's protect, which `protector` does without its checks
    (SrtpSession.protect, "self.__process(packet, lib.srtp_protect, SRTP_MAX_TRAILER_LEN)"),
    (SrtpSession._Session__process, "self._buffer[0 : len(data)] = data"),  # type: ignore[attr-defined]
    (SrtpSession._Session__process, "_srtp_assert(func(self._srtp[0], self._cdata, len_p))"),  # type: ignore[attr-defined]
    (SrtpSession._Session__process, "return self._buffer[0 : len_p[0]]"),  # type: ignore[attr-defined]
    (SrtpSession.__init__, 'self._cdata = ffi.new("char[]", 1500)'),
]
