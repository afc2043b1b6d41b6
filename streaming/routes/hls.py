"""HTTP edge of Low-Latency HLS: a live stream's playlist (with blocking reload), its init
segment, segments and parts. Any HTTP cache or CDN can front these: segments and parts never
change (`immutable`), playlists live a second. A stream relayed by another node: 307 there."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from core.errors import BadRequest
from core.http import Route
from streaming.app import SHOW
from streaming.directory import OwnedElsewhere
from streaming.hls import LiveHls

PLAYLIST = "application/vnd.apple.mpegurl"
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=1"


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
    return web.Response(text=live.playlist(), content_type=PLAYLIST, headers={"Cache-Control": SHORT})


async def media(request: web.Request) -> web.Response:
    try:
        live = await _live(request)
    except OwnedElsewhere as elsewhere:
        return web.Response(status=307, headers={"Location": elsewhere.node_url + request.path_qs})
    data = await live.media(request.match_info["name"])
    return web.Response(body=data, content_type="video/mp4", headers={"Cache-Control": IMMUTABLE})


_BASE = "/api/streams/{stream_id}/hls"

ROUTES = [
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
        _BASE + "/{name}",
        media,
        "init.mp4, seg{n}.m4s or part{n}.{i}.m4s of the live playlist (CMAF fMP4); the next part "
        "(the playlist's preload hint) is answered when it is ready",
        "hls",
        response_content_type="video/mp4",
        errors=(400, 404, 409, 503),
    ),
]
