"""The HTTP edge every package's routes share: the route table type, bodies, answers, the caller.

A package exports a list of `Route`s from its `routes` module; server/app.py registers them
and server/openapi.py documents them from the same list, so the document cannot forget a
route that is served (tests/test_openapi.py checks the router too). The AppKeys here are the
app state that every package's edge may read: the settings, the accounts and who is calling,
the metrics registry, readiness checks and the open WebSockets.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
import orjson
from aiohttp import web

from config.settings import Settings
from core.accounts import AccountStore, Authenticator
from core.bodies import decode_json
from core.errors import PayloadTooLarge, RequestTimeout, Unauthorized, UnsupportedMediaType
from core.identity import Account
from core.metrics import Metrics

T = TypeVar("T")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A readiness check: raises (or times out) when its backend does not answer.
ReadinessCheck = Callable[[], Awaitable[None]]

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
AUTH: web.AppKey[Authenticator] = web.AppKey("auth")
ACCOUNTS: web.AppKey[AccountStore] = web.AppKey("accounts")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
READINESS: web.AppKey[dict[str, ReadinessCheck]] = web.AppKey("readiness")
# Open WebSockets, closed with 1001 (going away) when the server shuts down.
WEBSOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("websockets")

PRINCIPAL: web.RequestKey[Account | None] = web.RequestKey("principal")


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    # Roles that may call it, as documentation; "anyone" when empty. The rule itself is
    # enforced by the domain code the handler calls.
    roles: tuple[str, ...] = ()
    body: type | None = None
    body_content_type: str = "application/json"
    response: type | None = None
    response_content_type: str = "application/json"
    status: int = 200
    errors: tuple[int, ...] = ()
    headers: tuple[str, ...] = ()  # request headers worth documenting (e.g. Idempotency-Key)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """Encode a msgspec Struct (typed responses) or plain data (orjson) once."""
    if isinstance(body, msgspec.Struct):
        payload = msgspec.json.encode(body)
    else:
        payload = orjson.dumps(body)
    return web.Response(body=payload, status=status, content_type="application/json", headers=headers)


async def read_body(
    request: web.Request, content_type: str = "application/json", *, limit: int | None = None
) -> bytes:
    """The raw body: 415 for another content type, 413 past `limit` (default: the app's)."""
    if request.content_type != content_type:
        raise UnsupportedMediaType(
            f"expected Content-Type: {content_type}, got {request.content_type or 'none'}"
        )
    limit = min(limit or request.app._client_max_size, request.app._client_max_size)
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    seconds = request.app[SETTINGS].body_timeout_s
    try:
        async with asyncio.timeout(seconds):  # a client that stops sending holds nothing for long
            body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes") from None
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {seconds:g} s") from None
    if len(body) > limit:  # sent without a Content-Length (chunked)
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    return body


async def read_json(request: web.Request, shape: type[T]) -> T:
    return decode_json(await read_body(request), shape)


def client_address(request: web.Request) -> str:
    """The client's address: the peer's, or, when the peer is a trusted proxy (setting
    `trusted_proxies`), the last address its X-Forwarded-For names that is not one."""
    remote = request.remote or ""
    trusted = request.app[SETTINGS].trusted_proxies
    if remote in trusted:
        hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",")]
        for hop in reversed(hops):
            if hop and hop not in trusted:
                return hop
    return remote


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Authorization must be 'Bearer <token>'", code="unauthorized")
    return token


async def principal(request: web.Request, *, allow_query_token: bool = False) -> Account | None:
    """Who is calling: None when anonymous, 401 when a token is given but unknown.

    Looked up lazily (public routes never touch the database for auth) and once per request.
    """
    if PRINCIPAL in request:
        return request[PRINCIPAL]
    token = bearer_token(request)
    if token is None and allow_query_token:
        token = request.query.get("token") or None
    account = None
    if token is not None:
        if not (token.isascii() and token.isprintable()):  # no token of ours looks like that
            raise Unauthorized("the token is not valid", code="invalid_token")
        account = await request.app[AUTH].authenticate(token, client_address(request))
        if account is None:
            raise Unauthorized("the token is not valid", code="invalid_token")
    request[PRINCIPAL] = account
    return account
