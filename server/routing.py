"""Route declarations shared by every package's HTTP edge, and the helpers handlers use.

A package exports a list of `Route`s; server/app.py registers them and
server/openapi.py documents them from the same list, so the document cannot
forget a route that is served (tests/test_openapi.py checks the router too).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson
from aiohttp import web

from checkout.store import Account
from server import keys
from server.errors import Unauthorized

PRINCIPAL: web.RequestKey[Account | None] = web.RequestKey("principal")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
        account = await request.app[keys.AUTH].authenticate(token)
        if account is None:
            raise Unauthorized("the token is not valid", code="invalid_token")
    request[PRINCIPAL] = account
    return account
