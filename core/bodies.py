"""JSON bodies: parse and validate into the msgspec shape a route declares, each failure its own error.

msgspec checks types, ranges and unknown fields while it parses, and its messages name the
field: 400 for what is not JSON at all, 422 naming the field for what is JSON but not valid.
"""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

from core.errors import BadRequest, Invalid

T = TypeVar("T")

_FIELD_AT = re.compile(r" - at `\$\.?([^`]*)`$")
_FIELD_NAMED = re.compile(r"field `([^`]+)`")


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
