"""Reading request bodies: content type, size limit, JSON shape — each failure its own status.

Shapes are msgspec Structs declared by the domain packages; msgspec checks types,
ranges and unknown fields while it parses, and its messages name the field.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from server.errors import BadRequest, Invalid, PayloadTooLarge, UnsupportedMediaType

T = TypeVar("T")

_FIELD_AT = re.compile(r" - at `\$\.?([^`]*)`$")
_FIELD_NAMED = re.compile(r"field `([^`]+)`")


async def read_body(request: web.Request, content_type: str = "application/json") -> bytes:
    if request.content_type != content_type:
        raise UnsupportedMediaType(
            f"expected Content-Type: {content_type}, got {request.content_type or 'none'}"
        )
    limit = request.app._client_max_size
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes") from None


def decode_json(body: bytes, shape: type[T]) -> T:
    """Parse and validate; 400 for what is not JSON, 422 naming the field otherwise."""
    if not body.strip():
        raise BadRequest("request body is empty; expected a JSON object", code="malformed_json")
    try:
        return msgspec.json.decode(body, type=shape)
    except msgspec.ValidationError as exc:
        message = str(exc)
        field_match = _FIELD_AT.search(message) or _FIELD_NAMED.search(message)
        field = field_match.group(1) if field_match and field_match.group(1) else "body"
        text = _FIELD_AT.sub("", message)
        raise Invalid(field, text, code="invalid_field") from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", code="malformed_json") from None


async def read_json(request: web.Request, shape: type[T]) -> T:
    return decode_json(await read_body(request), shape)


def to_builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)
