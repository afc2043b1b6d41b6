"""JSON bodies: parse and validate into the msgspec shape a route declares, each failure its own error.

msgspec checks types, ranges and unknown fields while it parses, and its messages name the
field: 400 for what is not JSON at all, 422 naming the field for what is JSON but not valid.
Text no database stores faithfully is refused here, for every body at once (422
`invalid_text`): a NUL (PostgreSQL refuses it, SQLite keeps it) and a lone UTF-16 surrogate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, TypeVar

import msgspec

from core.errors import BadRequest, Invalid

T = TypeVar("T")

_FIELD_AT = re.compile(r" - at `\$\.?([^`]*)`$")
_FIELD_NAMED = re.compile(r"field `([^`]+)`")
# In JSON a NUL can only arrive as this escape, and a surrogate only as one of these.
_NUL_ESCAPE = b"\\u0000"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


def bad_text(text: str) -> bool:
    """Whether text holds what no database here stores faithfully: a NUL or a lone surrogate.
    (Checked on every path parameter of every request: one compiled search.)"""
    return _BAD_TEXT.search(text) is not None


def _text_with_nul(value: Any, path: str) -> str | None:
    """The path of the first string holding a NUL, if any."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _text_with_nul(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def decode_json(body: bytes, shape: type[T]) -> T:
    """Parse and validate; 400 for what is not JSON, 422 naming the field otherwise."""
    if not body.strip():
        raise BadRequest("request body is empty; expected a JSON object", code="malformed_json")
    try:
        decoded = msgspec.json.decode(body, type=shape)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None
    except msgspec.DecodeError as exc:
        if _SURROGATE_ESCAPE.search(body):  # msgspec refuses a lone one, with an odd message
            raise Invalid("body", "text must not hold a lone UTF-16 surrogate", code="invalid_text") from None
        raise BadRequest(f"request body is not valid JSON: {exc}", code="malformed_json") from None
    if _NUL_ESCAPE in body:  # rare: look for the field only then
        field = _text_with_nul(msgspec.to_builtins(decoded), "")
        if field is not None:
            raise Invalid(field or "body", "text must not hold a NUL character", code="invalid_text")
    return decoded


def convert_fields(fields: dict[str, Any], shape: type[T]) -> T:
    """Validate what was decoded already (a socket's frame) into `shape`, with the same errors."""
    try:
        converted = msgspec.convert(fields, shape)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None
    field = _text_with_nul(fields, "")
    if field is not None:
        raise Invalid(field or "body", "text must not hold a NUL character", code="invalid_text")
    return converted


def _invalid(exc: msgspec.ValidationError) -> Invalid:
    message = str(exc)
    field_match = _FIELD_AT.search(message) or _FIELD_NAMED.search(message)
    field = field_match.group(1) if field_match and field_match.group(1) else "body"
    return Invalid(field, _FIELD_AT.sub("", message), code="invalid_field")
