"""HTTP edge of accounts: the admin makes brands and hosts; anyone makes a light viewer session;
a token's holder asks who it is (the pages check a kept token with it)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from core.accounts import create_account
from core.errors import Invalid, Unauthorized
from core.http import ACCOUNTS, Handler, Route, json_response, principal, read_json
from core.identity import Role, require


class NewAccount(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]

    def __post_init__(self) -> None:
        self.name = self.name.strip()
        if not self.name:
            raise Invalid("name", "must not be blank", code="invalid_field")


class AccountOut(msgspec.Struct):
    id: str
    name: str
    role: str
    token: str


class Me(msgspec.Struct):
    id: str
    name: str
    role: str


async def me(request: web.Request) -> web.Response:
    account = await principal(request)
    if account is None:
        raise Unauthorized("a bearer token is needed to ask who you are", code="unauthorized")
    return json_response(Me(id=account.id, name=account.name, role=str(account.role)))


def _account_creator(role: Role, needs_admin: bool) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        if needs_admin:
            require(await principal(request), Role.ADMIN)
        new = await read_json(request, NewAccount)
        account, token = await create_account(request.app[ACCOUNTS], role, new.name)
        return json_response(
            AccountOut(id=account.id, name=account.name, role=str(account.role), token=token), 201
        )

    return handler


ROUTES = [
    Route(
        "GET",
        "/api/me",
        me,
        "Who the bearer token belongs to",
        "accounts",
        roles=("admin", "host", "brand", "viewer"),
        response=Me,
        errors=(401,),
    ),
    Route(
        "POST",
        "/api/brands",
        _account_creator(Role.BRAND, True),
        "Create a brand",
        "accounts",
        roles=("admin",),
        body=NewAccount,
        response=AccountOut,
        status=201,
        errors=(400, 401, 403, 413, 415, 422),
    ),
    Route(
        "POST",
        "/api/hosts",
        _account_creator(Role.HOST, True),
        "Create a host",
        "accounts",
        roles=("admin",),
        body=NewAccount,
        response=AccountOut,
        status=201,
        errors=(400, 401, 403, 413, 415, 422),
    ),
    Route(
        "POST",
        "/api/viewers",
        _account_creator(Role.VIEWER, False),
        "Create a light viewer session",
        "accounts",
        body=NewAccount,
        response=AccountOut,
        status=201,
        errors=(400, 413, 415, 422),
    ),
]
