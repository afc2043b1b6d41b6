"""The API fuzzed from its own OpenAPI document: schemathesis against a live `livecart serve`.

Every documented operation gets requests drawn from its schema, valid and invalid alike,
each with a token of the role the operation is for, on SQLite and on PostgreSQL + Redis.
Whatever comes, the answer is never a 5xx, its status is one the document lists, and an error
is API.md's body: `{"error": {"code": "snake_case", "message": "..."}}`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.core.transport import Response
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import ADMIN_TOKEN, PG_URL
from tests.procs import ServerProcess, start_node
from tests.redis_server import RedisServer

# Requests per operation; each is a real HTTP round trip to the live server.
EXAMPLES = int(os.environ.get("LIVECART_FUZZ_EXAMPLES", "25"))
_CODE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass
class Live:
    url: str
    tokens: dict[str, str]  # role → bearer token
    roles: dict[tuple[str, str], str]  # (METHOD, path template) → the role it is for


def _call(url: str, method: str, path: str, token: str | None = None, body: Any = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}{path}", data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _pg_schema(action: str, name: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(f"{action} SCHEMA {name}{' CASCADE' if action == 'DROP' else ''}")
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(scope="module", params=["sqlite", "postgresql+redis"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    env = {"LIVECART_ADMIN_TOKEN": ADMIN_TOKEN, "LIVECART_DATA_DIR": str(workdir)}
    redis, schema = None, None
    if request.param == "postgresql+redis":
        schema = "t_" + secrets.token_hex(6)
        _pg_schema("CREATE", schema)
        redis = RedisServer(workdir).start()
        sep = "&" if "?" in PG_URL else "?"
        env |= {
            "LIVECART_DATABASE_URL": f"{PG_URL}{sep}search_path={schema}",
            "LIVECART_REDIS_URL": redis.url,
        }
    node: ServerProcess | None = None
    try:
        node = start_node(workdir, **env)
        url = node.url
        tokens = {"admin": ADMIN_TOKEN}
        ids = {}
        for role in ("brand", "host", "viewer"):
            made = _call(
                url, "POST", f"/api/{role}s", None if role == "viewer" else ADMIN_TOKEN, {"name": role}
            )
            tokens[role], ids[role] = made["token"], made["id"]
        _call(url, "POST", f"/api/brands/me/hosts/{ids['host']}", tokens["brand"], {})  # consent
        product = _call(
            url,
            "POST",
            "/api/products",
            tokens["brand"],
            {"title": "Scarf", "price": 900, "currency": "USD", "stock": 5},
        )
        _call(url, "POST", "/api/streams", tokens["host"], {"title": "Show", "products": [product["id"]]})
        document = _call(url, "GET", "/api/openapi.json")
        roles = {}
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                who = re.match(r"Who: (\w+)", operation.get("description", ""))
                roles[(method.upper(), path)] = who.group(1) if who else "viewer"
        yield Live(url, tokens, roles)
        log = node.stderr()
        assert node.stop() == 0, log[-3000:]
        assert "Traceback" not in log, log[log.index("Traceback") - 500 :][:3000]
    finally:
        if node is not None:
            node.kill()
        if redis is not None:
            redis.stop()
        if schema is not None:
            _pg_schema("DROP", schema)


def error_body_per_api_md(ctx: Any, response: Response, case: Any) -> None:
    if response.status_code < 400 or case.method.upper() == "HEAD":
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), f"{response.status_code} as {content_type}"
    body = json.loads(response.content)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error.get("code"), str) and _CODE.match(error["code"]), body
    assert isinstance(error.get("message"), str) and error["message"], body


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    error_body_per_api_md,
]


def _fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> None:
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=operation.as_strategy(mode))
    def fuzz(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=checks, timeout=10)

    fuzz()


def test_every_operation_answers_fuzzed_requests_as_documented(live: Live) -> None:
    document = schemathesis.openapi.from_url(f"{live.url}/api/openapi.json")
    failures: list[str] = []
    tried = 0
    for result in document.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself is valid
        operation = result.ok()
        role = live.roles.get((operation.method.upper(), operation.path), "viewer")
        headers = {"Authorization": f"Bearer {live.tokens.get(role, ADMIN_TOKEN)}"}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            tried += 1
            try:
                _fuzz(operation, mode, headers)
            except hypothesis.errors.Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # any string is a valid id: nothing to negate
            except Exception as exc:  # every operation is tried; all that failed are reported
                failures.append(f"{operation.label} ({mode}): {str(exc)[:1500]}")
    assert tried > 40
    assert not failures, "\n\n".join(failures)
