"""Errors with stable codes, shared by every package.

Domain code raises a `LivecartError` subclass; one middleware (server/middleware.py)
maps it to API.md's body `{"error": {"code", "message"}}` and its HTTP status, and
WebSocket `error` events carry the same codes. This module imports nothing from
aiohttp so that chat/, checkout/ and streaming/ can use it.
"""

from __future__ import annotations

from typing import Any


class LivecartError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        # Extra members of the error object, e.g. the `field` a validation error names.
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


class BadRequest(LivecartError):
    status = 400
    code = "bad_request"


class Unauthorized(LivecartError):
    status = 401
    code = "unauthorized"


class Forbidden(LivecartError):
    status = 403
    code = "forbidden"


class NotFound(LivecartError):
    status = 404
    code = "not_found"


class RequestTimeout(LivecartError):
    status = 408
    code = "request_timeout"


class Conflict(LivecartError):
    status = 409
    code = "conflict"


class PayloadTooLarge(LivecartError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(LivecartError):
    status = 415
    code = "unsupported_media_type"


class Invalid(LivecartError):
    """Well-formed but invalid input; `field` names the offending member."""

    status = 422
    code = "invalid"

    def __init__(self, field: str, message: str, *, code: str | None = None) -> None:
        super().__init__(f"{field}: {message}", code=code, field=field)
        self.field = field


class RateLimited(LivecartError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Unavailable(LivecartError):
    status = 503
    code = "unavailable"
