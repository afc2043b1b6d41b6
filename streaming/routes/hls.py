"""HTTP edge of Low-Latency HLS: a live stream's playlist (with blocking reload), its init
segment, segments and parts. Any HTTP cache or CDN can front these: segments and parts never
change (`immutable`), playlists live a second. A stream relayed by another node: 307 there."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web
from multidict import CIMultiDict

from core.errors import BadRequest, LivecartError, NotFound
from core.http import Route
from streaming.app import SHOW
from streaming.directory import OwnedElsewhere
from streaming.hls import LiveHls
from streaming.recording import PLAYLIST as PLAYLIST_FILE
from streaming.timeline import FILE as TIMELINE_FILE

PLAYLIST = "application/vnd.apple.mpegurl"
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=1"
# Built once: a thousand players' requests a second per stream each copy these, not build them.
_LIVE_HEADERS = CIMultiDict({"Content-Type": PLAYLIST, "Cache-Control": SHORT})
_MEDIA_HEADERS = CIMultiDict({"Content-Type": "video/mp4", "Cache-Control": IMMUTABLE})


async def _live(request: web.Request) -> LiveHls:
    relay = request.app[SHOW].relay
    stream_id = request.match_info["stream_id"]
    if stream_id not in relay.hls.live:
        await relay.check_here(stream_id)
    return relay.hls.get(stream_id)


def _count(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 9:
        raise BadRequest(f"{name} must be a whole number", code="invalid_hls_query")
    return int(value)


async def live_playlist(request: web.Request) -> web.Response:
    try:
        live = await _live(request)
    except OwnedElsewhere as elsewhere:
        return web.Response(status=307, headers={"Location": elsewhere.node_url + request.path_qs})
    msn, part = _count(request.query, "_HLS_msn"), _count(request.query, "_HLS_part")
    if part is not None and msn is None:
        raise BadRequest("_HLS_part needs _HLS_msn", code="invalid_hls_query")
    await live.started()
    if msn is not None:
        await live.wait_for(msn, part)
    return web.Response(body=live.playlist(), headers=_LIVE_HEADERS)


async def media(request: web.Request) -> web.Response:
    relay = request.app[SHOW].relay
    stream_id, name = request.match_info["stream_id"], request.match_info["name"]
    try:
        live = await _live(request)
        data = await live.media(name)
    except OwnedElsewhere as elsewhere:
        return web.Response(status=307, headers={"Location": elsewhere.node_url + request.path_qs})
    except LivecartError as exc:  # not live here (any more), or out of the live window: recorded?
        media_file = name.endswith((".mp4", ".m4s"))  # not the recording's index or timeline
        recorded = await relay.hls.recorded(stream_id, name) if media_file else None
        if recorded is None:
            raise exc from None
        data = recorded
    return web.Response(body=data, headers=_MEDIA_HEADERS)


async def replay_playlist(request: web.Request) -> web.Response:
    stream_id = request.match_info["stream_id"]
    text = await request.app[SHOW].relay.hls.recorded(stream_id, PLAYLIST_FILE)
    if text is None:
        raise NotFound(
            "no recording of this stream (yet: it is written when the show ends)", code="no_recording"
        )
    return web.Response(body=text, content_type=PLAYLIST, headers={"Cache-Control": SHORT})


async def timeline(request: web.Request) -> web.Response:
    stream_id = request.match_info["stream_id"]
    data = await request.app[SHOW].relay.hls.recorded(stream_id, TIMELINE_FILE)
    if data is None:
        raise NotFound("no recording of this stream (it is complete when the show ends)", code="no_recording")
    return web.Response(body=data, content_type="application/json", headers={"Cache-Control": SHORT})


_BASE = "/api/streams/{stream_id}/hls"

ROUTES = [
    Route(
        "GET",
        "/api/streams/{stream_id}/timeline",
        timeline,
        "An ended stream's pins, sales, chat and purchases, each at its offset (s) from the start "
        "of the recording: {started_at, events: [{offset, type, data}]}",
        "hls",
        errors=(404,),
    ),
    Route(
        "GET",
        _BASE + "/live.m3u8",
        live_playlist,
        "The live stream as a Low-Latency HLS media playlist (query _HLS_msn, _HLS_part: blocking "
        "reload); H.264 streams only; 307 to the owning node",
        "hls",
        response_content_type=PLAYLIST,
        errors=(400, 404, 409, 503),
    ),
    Route(
        "GET",
        _BASE + "/replay.m3u8",
        replay_playlist,
        "The recording of an ended stream as a VOD playlist (its segments are the live ones, kept)",
        "hls",
        response_content_type=PLAYLIST,
        errors=(404,),
    ),
    Route(
        "GET",
        _BASE + "/{name}",
        media,
        "init.mp4, seg{n}.m4s or part{n}.{i}.m4s of the live playlist (CMAF fMP4), or of the "
        "recording; the next part (the live playlist's preload hint) is answered when it is ready",
        "hls",
        response_content_type="video/mp4",
        errors=(400, 404, 409, 503),
    ),
]
