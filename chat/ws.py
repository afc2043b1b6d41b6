"""HTTP edge of live events: the room WebSocket and the host's blocked-words list."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Annotated, Any

import msgspec
from aiohttp import WSMsgType, web

from chat.fanout import Connection
from chat.session import Session
from checkout.store import Stream
from server import keys
from server.bodies import read_json
from server.errors import BadRequest, Unavailable
from server.routing import Route, json_response, principal

MSGPACK_PROTOCOL = "livecart.msgpack"
MAX_MESSAGE_BYTES = 64 * 1024  # aiohttp closes with 1009 past this; ours answer `too_large` past 4 KiB


def _since(request: web.Request) -> int | None:
    raw = request.query.get("since")
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise BadRequest("since must be a non-negative integer (the last seq you saw)", code="invalid_since")
    return int(raw)


def _closer(ws: web.WebSocketResponse) -> Callable[[int, str], None]:
    def close(code: int, reason: str) -> None:
        if not ws.closed:
            asyncio.get_running_loop().create_task(ws.close(code=code, message=reason.encode()))

    return close


def _event(type_: str, data: dict[str, Any], seq: int | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": type_, "ts": time.time(), "data": data}
    if seq is not None:
        event["seq"] = seq
    return event


async def room_socket(request: web.Request) -> web.StreamResponse:
    """Refusals (404, 401, 400) happen before the upgrade, as plain HTTP errors."""
    stream = await request.app[keys.STREAMS].get(request.match_info["stream_id"])
    who = await principal(request, allow_query_token=True)
    since = _since(request)
    ws = web.WebSocketResponse(
        protocols=(MSGPACK_PROTOCOL,), compress=False, max_msg_size=MAX_MESSAGE_BYTES, autoping=True
    )
    if not ws.can_prepare(request).ok:
        raise BadRequest("this endpoint speaks WebSocket only", code="websocket_required")
    await ws.prepare(request)
    if request.transport is None:  # the peer left during the upgrade
        return ws
    conn = Connection(
        request.transport,
        binary=ws.ws_protocol == MSGPACK_PROTOCOL,
        user=who,
        closer=_closer(ws),
    )
    open_sockets = request.app[keys.WEBSOCKETS]
    open_sockets.add(ws)
    try:
        await _serve(request.app, ws, conn, stream, since)
    except Unavailable as exc:  # Redis went away while joining: the client should retry
        if not ws.closed:
            conn.send(_event("error", {"code": exc.code, "message": exc.message}, 0))
            await ws.close(code=1013, message=b"try again later")
    finally:
        open_sockets.discard(ws)
    return ws


async def _serve(
    app: web.Application,
    ws: web.WebSocketResponse,
    conn: Connection,
    stream: Stream,
    since: int | None,
) -> None:
    streams, hub, settings = app[keys.STREAMS], app[keys.HUB], app[keys.SETTINGS]
    stream_id = stream.id
    if conn.user is not None and (await hub.state.standing(stream_id, conn.user.id))[0]:
        conn.send(_event("error", {"code": "banned", "message": "you are banned from this stream"}, 0))
        await ws.close(code=1008, message=b"banned")
        return
    room = await hub.join(stream_id, conn)
    try:
        # Joined first, then read the seq: anything newer reaches this socket live. The room's
        # own count is exact for that (every event past it is still on its way to this node),
        # and the stream's view is shared by everyone joining within a second: a join storm
        # of thousands costs no database or Redis read per socket.
        last = room.last_seq
        view = room.cached_view()
        if view is None:
            (fresh,) = await streams.views([await streams.get(stream_id)])
            view = room.cache_view(msgspec.to_builtins(fresh))
        you = None
        if conn.user is not None:
            you = {"id": conn.user.id, "name": conn.user.name, "role": str(conn.user.role)}
        conn.send(_event("hello", {"stream": view, "you": you, "seq": last}))
        sent_upto = last
        if since is not None and since != last:
            missed = await hub.broker.history(stream_id, since) if since < last else None
            if missed is None:
                conn.send(_event("resync", {"seq": last}, last))
            elif missed:
                payload = [e.as_dict() for e in missed]
                conn.send(payload[0] if len(payload) == 1 else payload)
                sent_upto = max(last, missed[-1].seq)
        room.go_live(conn, sent_upto)
        hub.note_viewer(stream_id, conn.user.id if conn.user is not None else f"anon:{hub.node}:{conn.id}")

        session = Session(
            hub,
            room,
            conn,
            host_id=stream.host_id,
            global_blocked=frozenset(w.casefold() for w in settings.blocked_words),
            limits=app[keys.CHAT_LIMITS],
        )
        async for message in ws:
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                await session.handle(message.data)
                if session.should_close:
                    await ws.close(code=1008, message=b"policy violation")
                    break
    finally:
        await hub.leave(stream_id, conn)


class BlockedWords(msgspec.Struct, forbid_unknown_fields=True):
    words: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=50)]], msgspec.Meta(max_length=500)
    ]


async def get_blocked_words(request: web.Request) -> web.Response:
    streams, hub = request.app[keys.STREAMS], request.app[keys.HUB]
    stream = await streams.check_owner(await principal(request), request.match_info["stream_id"])
    words = await hub.blocked_words(stream.id)
    return json_response(BlockedWords(words=sorted(words)))


async def put_blocked_words(request: web.Request) -> web.Response:
    streams, hub = request.app[keys.STREAMS], request.app[keys.HUB]
    stream = await streams.check_owner(await principal(request), request.match_info["stream_id"])
    body = await read_json(request, BlockedWords)
    words = frozenset(w.strip().casefold() for w in body.words if w.strip())
    await hub.set_blocked_words(stream.id, words)
    return json_response(BlockedWords(words=sorted(words)))


ROUTES = [
    Route(
        "GET",
        "/api/streams/{stream_id}/ws",
        room_socket,
        "Live events WebSocket (query: token, since; subprotocol livecart.msgpack)",
        "live",
        errors=(400, 401, 404),
    ),
    Route(
        "GET",
        "/api/streams/{stream_id}/blocked-words",
        get_blocked_words,
        "The stream's own blocked chat words",
        "live",
        roles=("host (owner)", "admin"),
        response=BlockedWords,
        errors=(401, 403, 404),
    ),
    Route(
        "PUT",
        "/api/streams/{stream_id}/blocked-words",
        put_blocked_words,
        "Replace the stream's own blocked chat words (added to the global list)",
        "live",
        roles=("host (owner)", "admin"),
        body=BlockedWords,
        response=BlockedWords,
        errors=(400, 401, 403, 404, 413, 415, 422),
    ),
]
