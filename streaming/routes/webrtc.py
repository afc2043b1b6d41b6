"""HTTP edge of WHIP (RFC 9725) and WHEP: SDP in, SDP out, a session URL to DELETE.

Trickle ICE is not offered: answers carry their candidates and PATCH on a session gets
405 from the router. OPTIONS on every endpoint answers 204 (with or without an Origin, as
WHIP clients probe without one); browsers' CORS preflights are answered by the middleware.
"""

from __future__ import annotations

from aiohttp import web

from core.errors import BadRequest, Unavailable
from core.http import SETTINGS, Handler, Route, principal, read_body
from streaming import peers
from streaming.app import SHOW
from streaming.directory import OwnedElsewhere

SDP = "application/sdp"


async def _offer(request: web.Request) -> str:
    body = await read_body(request, SDP, limit=peers.MAX_OFFER_BYTES)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the SDP offer is not UTF-8 text", code="invalid_sdp") from None


def _created(request: web.Request, role: str, session_id: str, answer: str) -> web.Response:
    base = request.app[SETTINGS].effective_public_url.rstrip("/")
    location = f"{base}/api/streams/{request.match_info['stream_id']}/{role}/{session_id}"
    return web.Response(
        status=201,
        text=answer,
        content_type=SDP,
        headers={"Location": location, "Accept-Patch": "application/trickle-ice-sdpfrag"},
    )


async def whip(request: web.Request) -> web.Response:
    who = await principal(request)
    offer = await _offer(request)
    peer = await request.app[SHOW].relay.publish(who, request.match_info["stream_id"], offer)
    return _created(request, "whip", peer.id, peer.answer)


async def whep(request: web.Request) -> web.Response:
    who = await principal(request)
    offer = await _offer(request)
    relay, stream_id = request.app[SHOW].relay, request.match_info["stream_id"]
    cap = request.app[SETTINGS].webrtc_viewer_cap
    if relay.hls.serves(stream_id) and relay.viewer_count(stream_id) >= cap:
        # the audience past the front row watches the same frames over LL-HLS
        raise Unavailable("this show's WebRTC seats are taken: watch it over HLS", code="webrtc_full")
    try:
        peer = await request.app[SHOW].relay.watch(who, request.match_info["stream_id"], offer)
    except OwnedElsewhere as elsewhere:
        return web.Response(status=307, headers={"Location": elsewhere.node_url + request.path_qs})
    return _created(request, "whep", peer.id, peer.answer)


async def end_whip(request: web.Request) -> web.Response:
    await request.app[SHOW].relay.delete(
        request.match_info["stream_id"], "whip", request.match_info["session_id"]
    )
    return web.Response(status=204)


async def end_whep(request: web.Request) -> web.Response:
    await request.app[SHOW].relay.delete(
        request.match_info["stream_id"], "whep", request.match_info["session_id"]
    )
    return web.Response(status=204)


def _options(allow: str, accept_post: bool) -> Handler:
    async def options(request: web.Request) -> web.Response:
        headers = {"Allow": allow}
        if accept_post:
            headers["Accept-Post"] = SDP
        return web.Response(status=204, headers=headers)

    return options


_WHIP = "/api/streams/{stream_id}/whip"
_WHEP = "/api/streams/{stream_id}/whep"
_ERRORS = (400, 401, 403, 404, 409, 413, 415)
_WHEP_ERRORS = (*_ERRORS, 503)

ROUTES = [
    Route(
        "POST",
        _WHIP,
        whip,
        "Publish the stream (WHIP): SDP offer in, SDP answer out, Location = the session",
        "webrtc",
        roles=("host (owner)", "admin"),
        response_content_type=SDP,
        status=201,
        errors=_ERRORS,
    ),
    Route(
        "POST",
        _WHEP,
        whep,
        "Watch the stream (WHEP): SDP offer (recvonly) in, SDP answer out; 307 to the owning node; "
        "503 webrtc_full past webrtc_viewer_cap (an H.264 stream: watch its HLS)",
        "webrtc",
        response_content_type=SDP,
        status=201,
        errors=_WHEP_ERRORS,
    ),
    Route(
        "DELETE",
        _WHIP + "/{session_id}",
        end_whip,
        "End the publishing session (the stream ends)",
        "webrtc",
        status=204,
        errors=(404,),
    ),
    Route(
        "DELETE",
        _WHEP + "/{session_id}",
        end_whep,
        "End a viewing session",
        "webrtc",
        status=204,
        errors=(404,),
    ),
]

# Answered for WHIP/WHEP clients; not API operations, so not in ROUTES (nor the OpenAPI document).
OPTIONS = [
    (_WHIP, _options("POST, OPTIONS", True)),
    (_WHEP, _options("POST, OPTIONS", True)),
    (_WHIP + "/{session_id}", _options("DELETE, OPTIONS", False)),
    (_WHEP + "/{session_id}", _options("DELETE, OPTIONS", False)),
]


def add_options(app: web.Application) -> None:
    """Register OPTIONS on the WHIP/WHEP resources (after ROUTES, so they share them)."""
    resources = {r.canonical: r for r in app.router.resources()}
    for path, handler in OPTIONS:
        # On the same resource as POST/DELETE, so the CORS middleware sees every method.
        if path in resources:
            resources[path].add_route("OPTIONS", handler)  # type: ignore[attr-defined]
        else:
            app.router.add_route("OPTIONS", path, handler)
