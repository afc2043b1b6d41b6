"""HTTP edge of live events: a stream room's WebSocket and its host's blocked-words list.

The room is keyed by the stream's id; what it needs to know of the stream (does it exist, who
hosts it, how `hello` describes it) it asks through `Subjects` (chat/subjects.py).
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable
from typing import Annotated

import msgspec
from aiohttp import WSMsgType, web

from chat.app import CHAT_LIMITS, CHECKOUT, HUB, SUBJECTS
from chat.fanout import Connection
from chat.session import Session
from core import events
from core.errors import BadRequest, Unavailable
from core.http import SETTINGS, WEBSOCKETS, Route, json_response, principal, read_json
from core.identity import Role, require, require_owner

MSGPACK_PROTOCOL = "livecart.msgpack"
MAX_MESSAGE_BYTES = 64 * 1024  # aiohttp closes with 1009 past this; ours answer `too_large` past 4 KiB


def _since(request: web.Request) -> int | None:
    raw = request.query.get("since")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise BadRequest("since must be a non-negative integer (the last seq you saw)", code="invalid_since")
    return int(raw)


_ANON = re.compile(r"[A-Za-z0-9_-]{16,64}")


def _anonymous_id(request: web.Request) -> str | None:
    """The id an anonymous viewer's page keeps across reconnects (`anon`), so it is counted
    once among the unique viewers however often it reconnects."""
    raw = request.query.get("anon")
    if raw is None or raw == "":
        return None
    if _ANON.fullmatch(raw) is None:
        raise BadRequest("anon must be 16 to 64 letters, digits, '-' or '_'", code="invalid_anon")
    return raw


def _closer(ws: web.WebSocketResponse) -> Callable[[int, str], None]:
    def close(code: int, reason: str) -> None:
        if not ws.closed:
            asyncio.get_running_loop().create_task(ws.close(code=code, message=reason.encode()))

    return close


async def room_socket(request: web.Request) -> web.StreamResponse:
    """Refusals (404, 401, 400) happen before the upgrade, as plain HTTP errors."""
    room_key = request.match_info["stream_id"]
    owner = await request.app[SUBJECTS].owner(room_key)
    who = await principal(request, allow_query_token=True)
    since = _since(request)
    anon = _anonymous_id(request)
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
    open_sockets = request.app[WEBSOCKETS]
    open_sockets.add(ws)
    try:
        await _serve(request.app, ws, conn, room_key, owner, since, anon)
    except Unavailable as exc:  # Redis went away while joining: the client should retry
        if not ws.closed:
            conn.send(events.message(events.ERROR, events.ErrorData(exc.code, exc.message), seq=0))
            await ws.close(code=1013, message=b"try again later")
    finally:
        open_sockets.discard(ws)
    return ws


async def _serve(
    app: web.Application,
    ws: web.WebSocketResponse,
    conn: Connection,
    room_key: str,
    owner: str,
    since: int | None,
    anon: str | None,
) -> None:
    hub, settings = app[HUB], app[SETTINGS]
    if conn.user is not None and (await hub.state.standing(room_key, conn.user.id))[0]:
        banned = events.ErrorData("banned", "you are banned from this stream")
        conn.send(events.message(events.ERROR, banned, seq=0))
        await ws.close(code=1008, message=b"banned")
        return
    room = await hub.join(room_key, conn)
    try:
        # Joined first, then read the seq: anything newer reaches this socket live. The room's
        # own count is exact for that (every event past it is still on its way to this node),
        # and the subject's view is shared by everyone joining within a second: a join storm
        # of thousands costs no database or Redis read per socket for it.
        last = room.last_seq
        view = await room.view(functools.partial(app[SUBJECTS].describe, room_key))
        you = None
        if conn.user is not None:
            you = events.Author(id=conn.user.id, name=conn.user.name, role=str(conn.user.role))
        conn.send(events.message(events.HELLO, events.Hello(stream=view, you=you, seq=last)))
        sent_upto = last
        if since is not None and since != last:
            missed = await hub.broker.history(room_key, since) if since < last else None
            if missed is None:
                conn.send(events.message(events.RESYNC, events.Resync(seq=last), seq=last))
            elif missed:
                payload = [e.as_dict() for e in missed]
                conn.send(payload[0] if len(payload) == 1 else payload)
                sent_upto = max(last, missed[-1].seq)
        room.go_live(conn, sent_upto)
        if conn.user is not None:
            hub.note_viewer(room_key, conn.user.id)
        else:  # without an id of its own, each anonymous socket counts as a viewer
            hub.note_viewer(room_key, f"anon:{anon}" if anon else f"anon:{hub.node}:{conn.id}")

        session = Session(
            hub,
            room,
            conn,
            owner_id=owner,
            global_blocked=frozenset(w.casefold() for w in settings.blocked_words),
            limits=app[CHAT_LIMITS],
            checkout=app.get(CHECKOUT),
        )
        async for message in ws:
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                await session.handle(message.data)
                if session.should_close:
                    await ws.close(code=1008, message=b"policy violation")
                    break
    finally:
        await hub.leave(room_key, conn)


class BlockedWords(msgspec.Struct, forbid_unknown_fields=True):
    words: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=50)]], msgspec.Meta(max_length=500)
    ]


async def _moderated_room(request: web.Request) -> str:
    """The room's key, once the caller is known to moderate it (its host, or the admin)."""
    who = require(await principal(request), Role.HOST, Role.ADMIN)
    room_key = request.match_info["stream_id"]
    owner = await request.app[SUBJECTS].owner(room_key)
    require_owner(who, owner, "only the host of this stream may do that")
    return room_key


async def get_blocked_words(request: web.Request) -> web.Response:
    room_key = await _moderated_room(request)
    words = await request.app[HUB].blocked_words(room_key)
    return json_response(BlockedWords(words=sorted(words)))


async def put_blocked_words(request: web.Request) -> web.Response:
    room_key = await _moderated_room(request)
    body = await read_json(request, BlockedWords)
    words = frozenset(w.strip().casefold() for w in body.words if w.strip())
    await request.app[HUB].set_blocked_words(room_key, words)
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
