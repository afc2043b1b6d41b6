"""Requests aiohttp could not even parse (a bad method, a header line over 8 KiB, too many
headers): the API's JSON error body and one warning line, not text/plain and a traceback
logged at error level.

Such requests never reach the app or its middleware: aiohttp's connection protocol answers
them itself, through `RequestHandler.handle_error`, which `install()` replaces process-wide.
tests/test_http_edges.py fails if an aiohttp upgrade moves or renames it.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from core.logs import log

logger = logging.getLogger("livecart.http")

_CODES = {400: "bad_request", 413: "payload_too_large", 431: "headers_too_large", 501: "not_implemented"}
_MAX_DETAIL = 200


def _answer(
    self: RequestHandler,
    request: Any,
    status: int = 500,
    exc: BaseException | None = None,
    message: str | None = None,
) -> web.StreamResponse:
    detail = str(getattr(exc, "message", None) or exc or message or "").strip().splitlines()
    reason = detail[0][:_MAX_DETAIL] if detail else "the request could not be read"
    if status >= 500:  # not a client's mistake: this one deserves its traceback
        logger.error("request failed before the app", exc_info=exc, extra={"fields": {"status": status}})
    else:
        log(logger, logging.WARNING, "unreadable request", status=status, remote=request.remote, error=reason)
    if request.writer.output_size > 0:  # an answer had started: the connection is lost anyway
        raise ConnectionError("an answer was already being sent")
    code = _CODES.get(status, "internal_error" if status >= 500 else "bad_request")
    body = {"error": {"code": code, "message": f"the request could not be read: {reason}"}}
    response = web.Response(status=status, body=orjson.dumps(body), content_type="application/json")
    response.force_close()
    return response


def install() -> None:
    """Answer unparseable requests as the API answers every other error (idempotent)."""
    RequestHandler.handle_error = _answer  # type: ignore[method-assign]
