"""Peer connections for WHIP and WHEP: the offer read once, codecs chosen, the answer made.

A publisher may send VP8, H264 (constrained baseline) and Opus; its receivers are marked
passthrough (streaming/hooks.py) so they yield encoded frames. A viewer's transceivers are
offered exactly the publisher's codec and are marked prepacked, so its senders send the
frames the relay packetized once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from aiortc.exceptions import OperationError
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters

from core.errors import BadRequest
from core.logs import log
from streaming import hooks

logger = logging.getLogger("livecart.relay")

MEDIA = ("audio", "video")
# What an offer may hold at most: WHIP/WHEP need an audio and a video line, a browser offers a
# few candidates per interface. The body itself is capped at MAX_OFFER_BYTES by the routes.
MAX_OFFER_BYTES = 32 * 1024
MAX_MEDIA_LINES = 8
MAX_CANDIDATES = 32
SENDING = ("sendonly", "sendrecv")
RECEIVING = ("recvonly", "sendrecv")
# Profiles whose constraint_set1 flag is set: constrained baseline, what every browser decodes.
_CONSTRAINED_BASELINE = ("42e0", "4240")


@dataclass(frozen=True)
class MediaLine:
    kind: str
    direction: str
    ssrc: int | None  # the media SSRC the offerer announced (not its RTX SSRC)


@dataclass(frozen=True)
class Offer:
    sdp: str
    media: list[MediaLine]


def without_mdns_candidates(text: str) -> str:
    """The SDP without `.local` (mDNS) candidates, which browsers offer to hide their address.

    Resolving one makes aioice send multicast DNS queries on every interface; without them
    the browser's connectivity checks still reach us and are learnt as peer-reflexive
    candidates, which is all a WHIP/WHEP server needs.
    """
    kept = []
    for line in text.splitlines(keepends=True):
        if line.startswith("a=candidate:"):
            fields = line.split()
            if len(fields) > 4 and fields[4].lower().endswith(".local"):
                continue
        kept.append(line)
    return "".join(kept)


def parse_offer(text: str) -> Offer:
    """The offer's audio/video lines; 400 for text that is not an SDP offer with media.

    An offer is bounded before it is parsed (aiortc's parser grows faster than linearly with
    the media lines, and every candidate is an address the server would send checks to): a
    WHIP or WHEP offer needs a handful of each."""
    if not text.startswith("v=0"):
        raise BadRequest("the body is not an SDP offer (it must start with v=0)", code="invalid_sdp")
    media_lines = text.count("\nm=")
    if media_lines > MAX_MEDIA_LINES:
        raise BadRequest(
            f"the SDP offer has {media_lines} media lines; at most {MAX_MEDIA_LINES}", code="invalid_sdp"
        )
    text = without_mdns_candidates(text)
    candidates = text.count("\na=candidate:")
    if candidates > MAX_CANDIDATES:
        raise BadRequest(
            f"the SDP offer has {candidates} candidates; at most {MAX_CANDIDATES}", code="invalid_sdp"
        )
    try:
        description = aiortc_sdp.SessionDescription.parse(text)
    except Exception as exc:  # aiortc's parser trips in many ways on odd offers (StopIteration too)
        raise BadRequest(
            f"the SDP offer does not parse: {exc or type(exc).__name__}", code="invalid_sdp"
        ) from None
    lines = []
    for media in description.media:
        if media.kind not in MEDIA:
            continue
        ssrc = None
        for group in media.ssrc_group:
            if group.semantic == "FID" and group.items:
                ssrc = int(group.items[0])
        if ssrc is None and media.ssrc:
            ssrc = media.ssrc[0].ssrc
        lines.append(MediaLine(media.kind, media.direction or "sendrecv", ssrc))
    if not lines:
        raise BadRequest("the SDP offer has no audio or video", code="invalid_sdp")
    mids = {media.rtp.muxId for media in description.media}
    for group in description.group:
        if group.semantic == "BUNDLE" and not {str(m) for m in group.items} <= mids:
            raise BadRequest("the SDP offer bundles a media line it does not have", code="invalid_sdp")
    return Offer(text, lines)


def ice_servers(urls: tuple[str, ...]) -> list[RTCIceServer]:
    """`turn:user:secret@host:port` carries its credentials; an empty list means no server at
    all (aiortc would otherwise query Google's STUN server)."""
    servers = []
    for url in urls:
        scheme, _, rest = url.partition(":")
        if "@" in rest:
            credentials, _, host = rest.rpartition("@")
            username, _, credential = credentials.partition(":")
            servers.append(RTCIceServer(f"{scheme}:{host}", username=username, credential=credential))
        else:
            servers.append(RTCIceServer(url))
    return servers


def new_connection(servers: list[RTCIceServer]) -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=list(servers)))


def _usable(codec: RTCRtpCodecCapability) -> bool:
    name = codec.mimeType.lower()
    if name == "video/h264":
        profile = str(codec.parameters.get("profile-level-id", "")).lower()
        return profile.startswith(_CONSTRAINED_BASELINE)
    return name in ("video/vp8", "video/rtx", "audio/opus")


def publisher_preferences(kind: str) -> list[RTCRtpCodecCapability]:
    """What a publisher may send, H.264 first (aiortc answers in this order, whatever the offer's):
    the relay also serves an H.264 stream as LL-HLS, and every phone decodes it."""
    usable = [c for c in RTCRtpSender.getCapabilities(kind).codecs if _usable(c)]
    return sorted(usable, key=lambda c: c.mimeType.lower() != "video/h264")


def viewer_preferences(codec: RTCRtpCodecParameters) -> list[RTCRtpCodecCapability]:
    """The publisher's codec exactly (and RTX with it, for video retransmissions)."""
    kind = codec.mimeType.split("/")[0]
    chosen = []
    for capability in RTCRtpSender.getCapabilities(kind).codecs:
        same = capability.mimeType.lower() == codec.mimeType.lower() and (
            capability.parameters == codec.parameters
        )
        if same or capability.mimeType.lower() == "video/rtx":
            chosen.append(capability)
    return chosen


async def answer(pc: RTCPeerConnection, offer: Offer, prepare: Callable[[], None]) -> str:
    """Apply the offer (transceivers already made), let `prepare` mark them, and make the answer
    with its candidates (no trickle)."""
    try:
        await pc.setRemoteDescription(RTCSessionDescription(offer.sdp, "offer"))
    except OperationError as exc:
        raise BadRequest(f"no codec both sides can use: {exc}", code="no_usable_codec") from None
    except Exception as exc:  # whatever else aiortc cannot take in an offer
        raise BadRequest(f"the SDP offer was refused: {exc!r}", code="invalid_sdp") from None
    for transceiver in pc.getTransceivers():
        if not hooks.negotiated_codecs(transceiver):
            raise BadRequest(f"no usable {transceiver.kind} codec offered", code="no_usable_codec")
    prepare()
    try:
        local = await pc.createAnswer()
    except Exception as exc:  # aiortc trips on some odd offers
        raise BadRequest(f"the SDP offer was refused: {exc!r}", code="invalid_sdp") from None
    await pc.setLocalDescription(local)
    description = pc.localDescription
    assert description is not None
    return description.sdp


def primary_codec(transceiver: RTCRtpTransceiver) -> RTCRtpCodecParameters:
    return hooks.negotiated_codecs(transceiver)[0]


async def close_quietly(pc: RTCPeerConnection) -> None:
    """Close a connection that may be half set up (aiortc's close trips on missing transports)."""
    try:
        await pc.close()
    except AttributeError as exc:
        log(logger, logging.WARNING, "peer connection closed uncleanly", error=repr(exc))


def pli_sender(receiver: RTCRtpReceiver, ssrc: int | None) -> Callable[[], Awaitable[None]]:
    """What asks the publisher for a keyframe (RTCP PLI) on the media `receiver` gets."""

    async def send() -> None:
        ssrcs = [ssrc] if ssrc is not None else [s.source for s in receiver.getSynchronizationSources()]
        for media_ssrc in ssrcs:
            await hooks.send_pli(receiver, media_ssrc)

    return send
