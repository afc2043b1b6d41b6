"""WHIP and WHEP sessions on this node, and the lifecycle of each stream's relay.

A publisher (WHIP) claims the stream in the directory, its receivers feed the relay, and
once its connection is up the stream goes `live`. If its connection fails or closes, the
relay waits `publisher_grace_s` for a new publisher before the stream ends; its viewers are
then closed and nothing of the stream is left running. A viewer (WHEP) on a node that does
not hold the stream is sent to the node that does (`OwnedElsewhere` → 307).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCIceServer, RTCPeerConnection, RTCRtpTransceiver

from core.errors import BadRequest, Conflict, LivecartError, NotFound
from core.identity import Account
from core.logs import log
from streaming import hooks, hooks_send, peers
from streaming.directory import Directory, OwnedElsewhere
from streaming.hls_node import HlsStreams
from streaming.records import StreamState
from streaming.relay import Feed, ViewerTrack
from streaming.streams import Streams

logger = logging.getLogger("livecart.relay")


@dataclass(frozen=True)
class RelaySettings:
    publisher_grace_s: float = 10.0
    directory_ttl_s: float = 15.0
    connect_timeout_s: float = 20.0  # a peer that has not connected by then is let go


@dataclass(eq=False)
class Peer:
    id: str
    role: str  # "publisher" or "viewer"
    pc: RTCPeerConnection
    tracks: list[ViewerTrack] = field(default_factory=list)
    answer: str = ""
    connected: bool = False
    closing: bool = False
    timer: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class StreamRelay:
    stream_id: str
    feeds: dict[str, Feed] = field(default_factory=dict)
    publisher: Peer | None = None
    viewers: dict[str, Peer] = field(default_factory=dict)
    grace: asyncio.Task[None] | None = None
    ended: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Sessions:
    def __init__(
        self,
        streams: Streams,
        directory: Directory,
        node_url: str,
        ice_servers: list[RTCIceServer],
        settings: RelaySettings | None = None,
        hls: HlsStreams | None = None,
    ) -> None:
        self._streams = streams
        self._directory = directory
        self.node_url = node_url.rstrip("/")
        self._ice_servers = ice_servers
        self.settings = settings or RelaySettings()
        self.hls = hls or HlsStreams()
        self.relays: dict[str, StreamRelay] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refresher: asyncio.Task[None] | None = None

    # -- lifecycle of the service -------------------------------------------------------------
    async def start(self) -> None:
        self._refresher = asyncio.create_task(self._refresh_forever(), name="relay-directory")

    async def close(self) -> None:
        """Node shutdown: every session closed, claims released (streams keep their state)."""
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        for relay in list(self.relays.values()):
            await self._end(relay, mark_ended=False, complete=False)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log(logger, logging.ERROR, "relay task failed", error=repr(task.exception()))

    # -- publishing (WHIP) --------------------------------------------------------------------
    async def publish(self, principal: Account | None, stream_id: str, sdp: str) -> Peer:
        stream = await self._streams.check_owner(principal, stream_id)
        if stream.ended:
            raise Conflict("the stream has ended", code="stream_ended")
        offer = peers.parse_offer(sdp)
        if not any(line.direction in peers.SENDING for line in offer.media):
            raise BadRequest("the offer sends no audio or video", code="no_media")
        relay = self.relays.get(stream_id)
        if relay is None:
            relay = self.relays[stream_id] = StreamRelay(stream_id)
        async with relay.lock:
            if relay.ended:
                raise Conflict("the stream has ended", code="stream_ended")
            if relay.publisher is not None:
                raise Conflict("the stream already has a publisher", code="already_publishing")
            owner = await self._directory.claim(stream_id, self.node_url, self.settings.directory_ttl_s)
            if owner != self.node_url:
                self._forget_if_idle(relay)
                raise Conflict("the stream is published on another node", code="already_publishing")
            try:
                peer = await self._open_publisher(relay, offer)
            except BaseException:
                if relay.publisher is None and not relay.feeds:
                    self._forget_if_idle(relay)
                    await self._directory.release(stream_id, self.node_url)
                raise
        if relay.grace is not None:
            relay.grace.cancel()
            relay.grace = None
        log(logger, logging.INFO, "publisher joined", stream=stream_id, session=peer.id)
        return peer

    async def _open_publisher(self, relay: StreamRelay, offer: peers.Offer) -> Peer:
        pc = peers.new_connection(self._ice_servers)
        peer = Peer(secrets.token_urlsafe(16), "publisher", pc)
        transceivers = []
        for line in offer.media:
            transceiver = pc.addTransceiver(line.kind, direction="recvonly")
            transceiver.setCodecPreferences(peers.publisher_preferences(line.kind))
            transceivers.append(transceiver)

        def prepare() -> None:
            for transceiver in transceivers:
                hooks.mark_passthrough(transceiver)

        try:
            peer_answer = await peers.answer(pc, offer, prepare)
            changed = False
            for line, transceiver in zip(offer.media, transceivers, strict=True):
                if line.direction not in peers.SENDING:
                    continue
                codec = peers.primary_codec(transceiver)
                feed = relay.feeds.get(line.kind)
                if feed is not None and not feed.same_codec(codec):
                    await feed.close()  # its viewers negotiated the old codec: they must reconnect
                    del relay.feeds[line.kind]
                    changed = True
                    feed = None
                if feed is None:
                    feed = relay.feeds[line.kind] = Feed(line.kind, codec)
                    self.hls.follow(relay.stream_id, line.kind, codec.name, feed.taps, feed.keyframes.request)
                receiver = transceiver.receiver
                feed.follow(receiver.track, peers.pli_sender(receiver, line.ssrc))
            if changed:
                for viewer in list(relay.viewers.values()):
                    await self._close_viewer(relay, viewer)
        except BaseException:
            await peers.close_quietly(pc)
            raise
        peer.answer = peer_answer
        relay.publisher = peer

        @pc.on("connectionstatechange")
        def on_state() -> None:
            state = pc.connectionState
            if state == "connected" and not peer.connected:
                peer.connected = True
                self._spawn(self._went_live(relay, peer))
            elif state in ("failed", "closed") and not peer.closing:
                self._spawn(self._publisher_lost(relay, peer))

        peer.timer = asyncio.get_running_loop().call_later(
            self.settings.connect_timeout_s, self._connect_timeout, relay, peer
        )
        return peer

    def _connect_timeout(self, relay: StreamRelay, peer: Peer) -> None:
        peer.timer = None
        if not peer.connected and not peer.closing:
            if peer.role == "publisher":
                self._spawn(self._publisher_lost(relay, peer))
            else:
                self._spawn(self._close_viewer(relay, peer))

    async def _went_live(self, relay: StreamRelay, peer: Peer) -> None:
        if peer.timer is not None:
            peer.timer.cancel()
            peer.timer = None
        try:
            await self._streams.set_state(relay.stream_id, StreamState.LIVE)
        except Conflict:
            await self._end(relay, mark_ended=False)  # ended over HTTP meanwhile
        except LivecartError as exc:
            log(logger, logging.WARNING, "stream not marked live", stream=relay.stream_id, error=str(exc))

    async def _publisher_lost(self, relay: StreamRelay, peer: Peer) -> None:
        if relay.publisher is not peer or relay.ended:
            return
        relay.publisher = None
        log(logger, logging.INFO, "publisher lost", stream=relay.stream_id, session=peer.id)
        await self._close_peer(peer)
        relay.grace = asyncio.ensure_future(self._grace(relay))

    async def _grace(self, relay: StreamRelay) -> None:
        await asyncio.sleep(self.settings.publisher_grace_s)
        if relay.publisher is None and not relay.ended:
            relay.grace = None  # this task is ending the stream: it must not cancel itself
            await self._end(relay)

    # -- watching (WHEP) ----------------------------------------------------------------------
    async def watch(self, principal: Account | None, stream_id: str, sdp: str) -> Peer:
        relay = self.relays.get(stream_id)
        await self.check_here(stream_id)
        stream = await self._streams.get(stream_id)
        if stream.state is not StreamState.LIVE or relay is None or relay.ended or not relay.feeds:
            raise Conflict("the stream is not live", code="stream_not_live")
        offer = peers.parse_offer(sdp)
        pc = peers.new_connection(self._ice_servers)
        peer = Peer(secrets.token_urlsafe(16), "viewer", pc)
        transceivers: list[tuple[RTCRtpTransceiver, Feed | None]] = []
        for line in offer.media:
            feed = relay.feeds.get(line.kind)
            if feed is None or line.direction not in peers.RECEIVING:
                transceivers.append((pc.addTransceiver(line.kind, direction="inactive"), None))
                continue
            transceiver = pc.addTransceiver(line.kind, direction="sendonly")
            transceiver.setCodecPreferences(peers.viewer_preferences(feed.codec))
            transceivers.append((transceiver, feed))
        if all(feed is None for _, feed in transceivers):
            await peers.close_quietly(pc)
            raise BadRequest("the offer receives none of the stream's media", code="no_media")

        def prepare() -> None:
            for transceiver, feed in transceivers:
                if feed is not None:
                    hooks.mark_prepacked(transceiver)
                    track = feed.track()
                    track.direct = hooks_send.DirectSender(transceiver)
                    peer.tracks.append(track)
                    transceiver.sender.replaceTrack(track)
                    hooks.on_keyframe_request(transceiver.sender, feed.keyframes.request)

        try:
            peer.answer = await peers.answer(pc, offer, prepare)
        except BaseException:
            for track in peer.tracks:
                track.stop()
            await peers.close_quietly(pc)
            raise
        if relay.ended:
            await self._close_peer(peer)
            raise Conflict("the stream is not live", code="stream_not_live")
        relay.viewers[peer.id] = peer

        @pc.on("connectionstatechange")
        def on_state() -> None:
            state = pc.connectionState
            if state == "connected" and not peer.connected:
                peer.connected = True
                if peer.timer is not None:
                    peer.timer.cancel()
                    peer.timer = None
                for track in peer.tracks:
                    track.start()
            elif state in ("failed", "closed") and not peer.closing:
                self._spawn(self._close_viewer(relay, peer))

        peer.timer = asyncio.get_running_loop().call_later(
            self.settings.connect_timeout_s, self._connect_timeout, relay, peer
        )
        return peer

    # -- ending ---------------------------------------------------------------------------------
    async def delete(self, stream_id: str, role: str, session_id: str) -> None:
        """DELETE of a session URL: a publisher ends its stream, a viewer leaves."""
        relay = self.relays.get(stream_id)
        if relay is not None and role == "whip":
            peer = relay.publisher
            if peer is not None and peer.id == session_id:
                await self._end(relay)
                return
        if relay is not None and role == "whep":
            viewer = relay.viewers.get(session_id)
            if viewer is not None:
                await self._close_viewer(relay, viewer)
                return
        raise NotFound("no such session", code="session_not_found")

    async def _close_viewer(self, relay: StreamRelay, peer: Peer) -> None:
        relay.viewers.pop(peer.id, None)
        await self._close_peer(peer)

    async def _close_peer(self, peer: Peer) -> None:
        if peer.closing:
            return
        peer.closing = True
        if peer.timer is not None:
            peer.timer.cancel()
            peer.timer = None
        for track in peer.tracks:
            track.stop()
        await peers.close_quietly(peer.pc)

    async def _end(self, relay: StreamRelay, *, mark_ended: bool = True, complete: bool = True) -> None:
        if relay.ended:
            return
        relay.ended = True
        if self.relays.get(relay.stream_id) is relay:
            del self.relays[relay.stream_id]
        if relay.grace is not None:
            relay.grace.cancel()
            relay.grace = None
        publisher, relay.publisher = relay.publisher, None
        if publisher is not None:
            await self._close_peer(publisher)
        for viewer in list(relay.viewers.values()):
            await self._close_viewer(relay, viewer)
        for feed in relay.feeds.values():
            await feed.close()
        relay.feeds.clear()
        await self.hls.end(relay.stream_id, complete=complete)  # complete: the show is over
        try:
            await self._directory.release(relay.stream_id, self.node_url)
            if mark_ended:
                await self._streams.set_state(relay.stream_id, StreamState.ENDED)
        except LivecartError as exc:
            log(logger, logging.WARNING, "stream end not recorded", stream=relay.stream_id, error=str(exc))
        log(logger, logging.INFO, "stream relay closed", stream=relay.stream_id)

    def _forget_if_idle(self, relay: StreamRelay) -> None:
        if relay.publisher is None and not relay.feeds and not relay.viewers:
            if self.relays.get(relay.stream_id) is relay:
                del self.relays[relay.stream_id]

    # -- the directory ------------------------------------------------------------------------
    async def _refresh_forever(self) -> None:
        interval = self.settings.directory_ttl_s / 3
        while True:
            await asyncio.sleep(interval)
            for relay in list(self.relays.values()):
                try:
                    await self._refresh(relay)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log(
                        logger,
                        logging.WARNING,
                        "directory refresh failed",
                        stream=relay.stream_id,
                        error=repr(exc),
                    )

    async def _refresh(self, relay: StreamRelay) -> None:
        if relay.ended:
            return
        owner = await self._directory.claim(relay.stream_id, self.node_url, self.settings.directory_ttl_s)
        stream = await self._streams.get(relay.stream_id)
        if owner != self.node_url or stream.ended:
            # Ended over HTTP, or another node holds it now: this node lets go.
            await self._end(relay, mark_ended=False, complete=stream.ended)

    async def stream_ended(self, stream_id: str) -> None:
        """The stream ended through this node (the host's `end`): close its sessions now."""
        relay = self.relays.get(stream_id)
        if relay is not None:
            await self._end(relay, mark_ended=False)

    async def check_here(self, stream_id: str) -> None:
        """OwnedElsewhere when another node relays the stream (and this one does not)."""
        relay = self.relays.get(stream_id)
        if relay is None or not relay.feeds:
            owner = await self._directory.owner(stream_id)
            if owner is not None and owner != self.node_url:
                raise OwnedElsewhere(owner)

    def viewer_count(self, stream_id: str) -> int:
        relay = self.relays.get(stream_id)
        return len(relay.viewers) if relay else 0
