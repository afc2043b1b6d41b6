"""The OpenAPI 3.1 document, built from the same Route list the app serves."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web

from core.http import Route, json_response

_PARAM = re.compile(r"\{(\w+)\}")
_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    204: "No content",
    307: "Temporary redirect",
    400: "Malformed request",
    401: "No or unknown token",
    403: "Wrong role or not the owner",
    404: "Not found",
    405: "Method not allowed",
    408: "The request body stopped arriving",
    409: "Conflict with the current state",
    413: "Body too large",
    415: "Wrong content type",
    422: "Well-formed but invalid",
    429: "Rate limited",
    503: "A backend is down",
}


class ErrorDetail(msgspec.Struct):
    code: str
    message: str
    field: str | None = None


class Error(msgspec.Struct):
    error: ErrorDetail


def _operation_id(route: Route) -> str:
    words = _PARAM.sub(r"by_\1", route.path).strip("/").replace("/", "_").replace(".", "_")
    return f"{route.method.lower()}_{words or 'index'}"


def build(routes: list[Route], version: str) -> dict[str, Any]:
    shapes: set[type] = {Error}
    for route in routes:
        shapes.update(t for t in (route.body, route.response) if t is not None)
    _, components = msgspec.json.schema_components(
        sorted(shapes, key=lambda t: t.__name__), ref_template="#/components/schemas/{name}"
    )

    def ref(shape: type) -> dict[str, str]:
        return {"$ref": f"#/components/schemas/{shape.__name__}"}

    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        op: dict[str, Any] = {
            "summary": route.summary,
            "tags": [route.tag],
            "operationId": _operation_id(route),
        }
        if route.roles:
            op["security"] = [{"bearer": []}]
            op["description"] = "Who: " + ", ".join(route.roles) + "."
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(route.path)
        ]
        params += [
            {"name": header, "in": "header", "required": True, "schema": {"type": "string"}}
            for header in route.headers
        ]
        if params:
            op["parameters"] = params
        if route.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {route.body_content_type: {"schema": ref(route.body)}},
            }
        ok: dict[str, Any] = {"description": _STATUS_TEXT.get(route.status, "OK")}
        if route.status != 204:
            ok["content"] = {
                route.response_content_type: {
                    "schema": ref(route.response) if route.response else {"type": "string"}
                }
            }
        responses: dict[str, Any] = {str(route.status): ok}
        for status in route.errors:
            responses[str(status)] = {
                "description": _STATUS_TEXT.get(status, "Error"),
                "content": {"application/json": {"schema": ref(Error)}},
            }
        op["responses"] = responses
        paths.setdefault(route.path, {})[route.method.lower()] = op

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "livecart",
            "version": version,
            "description": "Live-stream shopping server. Errors: "
            '{"error": {"code": "snake_case", "message": "..."}}. Money in minor units.',
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[DOCUMENT])


DOCUMENT: web.AppKey[dict[str, Any]] = web.AppKey("openapi_document")

ROUTES = [
    Route("GET", "/api/openapi.json", openapi, "This document", "operations"),
]
