"""HTTP edge of consent: a brand grants hosts the right to feature its products (the admin may
act for any brand)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from checkout.app import SHOP
from checkout.records import Grant
from core.http import Handler, Route, json_response, principal, read_json


class GrantTerms(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    max_units: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None  # per sale; null: no cap


class GrantOut(msgspec.Struct):
    brand_id: str
    host_id: str
    max_units: int | None
    created_at: float


class GrantList(msgspec.Struct):
    grants: list[GrantOut]


def _out(grant: Grant) -> GrantOut:
    return GrantOut(grant.brand_id, grant.host_id, grant.max_units, grant.created_at)


def _brand(request: web.Request) -> str | None:
    return request.match_info.get("brand_id")  # None on the /me/ routes


async def put_grant(request: web.Request) -> web.Response:
    who = await principal(request)
    grants = request.app[SHOP].grants
    await grants.acting_brand(who, _brand(request))  # who may, before what: a stranger learns nothing
    terms = await read_json(request, GrantTerms) if request.can_read_body else GrantTerms()
    grant, created = await grants.grant(who, _brand(request), request.match_info["host_id"], terms.max_units)
    return json_response(_out(grant), 201 if created else 200)


async def delete_grant(request: web.Request) -> web.Response:
    await request.app[SHOP].grants.revoke(
        await principal(request), _brand(request), request.match_info["host_id"]
    )
    return web.Response(status=204)


async def list_grants(request: web.Request) -> web.Response:
    grants = await request.app[SHOP].grants.of_brand(await principal(request), _brand(request))
    return json_response(GrantList([_out(g) for g in grants]))


def _routes(prefix: str, who: tuple[str, ...], whose: str) -> list[Route]:
    handlers: list[tuple[str, str, Handler, str, int, tuple[int, ...]]] = [
        (
            "POST",
            "/hosts/{host_id}",
            put_grant,
            f"Let a host feature {whose} products (or change the cap)",
            201,
            (400, 401, 403, 404, 413, 415, 422),
        ),
        (
            "DELETE",
            "/hosts/{host_id}",
            delete_grant,
            f"Take {whose} grant back; the host's running sales of them end",
            204,
            (401, 403, 404),
        ),
        (
            "GET",
            "/hosts",
            list_grants,
            f"The hosts {whose} products may be featured by",
            200,
            (401, 403, 404),
        ),
    ]
    return [
        Route(
            method,
            prefix + path,
            handler,
            summary,
            "brands",
            roles=who,
            body=GrantTerms if method == "POST" else None,
            response=None if method == "DELETE" else (GrantList if method == "GET" else GrantOut),
            status=status,
            errors=errors,
        )
        for method, path, handler, summary, status, errors in handlers
    ]


# /me/ first: aiohttp matches routes in the order they were added
ROUTES = [
    *_routes("/api/brands/me", ("brand",), "the brand's"),
    *_routes("/api/brands/{brand_id}", ("admin",), "a brand's"),
]
