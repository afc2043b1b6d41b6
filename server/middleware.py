"""The three middlewares every request passes: observe (metrics + access log), CORS, errors.

Order matters: `observe` is outermost so it sees the final status of every
request, errors included; `cors` adds its headers to error bodies too, so a
browser can read them; `errors` turns every exception into API.md's body.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from core.bodies import bad_text
from core.db.driver import InvalidValue, StoreError
from core.errors import Invalid, LivecartError, RateLimited, Unavailable
from core.http import METRICS, SETTINGS, json_response
from core.logs import log

access_log = logging.getLogger("livecart.http")
error_log = logging.getLogger("livecart.errors")

_AIOHTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}

CORS_ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key, If-Match"
CORS_EXPOSE_HEADERS = "Location, Link, ETag, Retry-After"


def route_label(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource
    if resource is None or getattr(request.match_info, "http_exception", None) is not None:
        return "unmatched"
    return resource.canonical


class InFlight:
    """Requests being handled now, so shutdown can wait for them before closing connections.

    Once `draining`, new requests (keep-alive connections bring them until closed) get 503
    `shutting_down` at once, and every answer closes its connection: the count then only goes
    down, and shutdown ends as soon as the requests it found have finished."""

    def __init__(self) -> None:
        self.count = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


IN_FLIGHT: web.AppKey[InFlight] = web.AppKey("in_flight")


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    in_flight = request.app[IN_FLIGHT]
    if in_flight.draining:
        return _shutting_down()
    in_flight.enter()
    try:
        response = await handler(request)
        status = response.status
        if in_flight.draining and not response.prepared:
            response.force_close()  # the last answer on this connection
        return response
    except web.HTTPException as exc:  # redirects and the like pass through
        status = exc.status
        raise
    finally:
        in_flight.leave()
        elapsed = time.perf_counter() - started
        route = route_label(request)
        if route != "/metrics":
            request.app[METRICS].observe(request.method, route, status, elapsed)
        if access_log.isEnabledFor(logging.INFO):  # spare building the fields when it is off
            log(
                access_log,
                logging.INFO,
                "request",
                method=request.method,
                route=route,
                path=request.path,
                status=status,
                ms=round(elapsed * 1000, 2),
                remote=request.remote,
            )


def _shutting_down() -> web.Response:
    down = Unavailable("the server is shutting down; try again", code="shutting_down")
    response = json_response(down.body(), status=down.status, headers={"Retry-After": "1"})
    response.force_close()
    return response


def _route_methods(request: web.Request) -> set[str]:
    match_info = request.match_info
    exc = getattr(match_info, "http_exception", None)
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return set(exc.allowed_methods)
    resource = match_info.route.resource
    if exc is not None or resource is None:
        return set()
    return {route.method for route in resource}


def _allowed_origin(request: web.Request) -> str | None:
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    allowed = request.app[SETTINGS].cors_origins
    if "*" in allowed:
        return "*"
    return origin if origin.rstrip("/") in allowed else None


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    origin = _allowed_origin(request)
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        # A preflight: answered here for every route, so handlers never see it.
        allowed_methods = sorted(_route_methods(request) - {"HEAD", "OPTIONS"})
        if not allowed_methods:
            return await handler(request)  # unknown path: 404 from the router
        response = web.Response(status=204)
        response.headers["Allow"] = ", ".join(allowed_methods)
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Methods"] = ", ".join(allowed_methods)
            response.headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
            if origin != "*":
                response.headers["Vary"] = "Origin"
        return response
    try:
        answer = await handler(request)
    except web.HTTPException as exc:
        _add_cors(exc, origin)
        raise
    _add_cors(answer, origin)
    return answer


def _add_cors(response: web.StreamResponse | web.HTTPException, origin: str | None) -> None:
    if origin is None or getattr(response, "prepared", False):
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
    if origin != "*":
        response.headers["Vary"] = "Origin"


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        # A path parameter no record can be named by (a NUL, a byte that is not UTF-8): there
        # is no such resource, and the database is never asked (PostgreSQL refuses a NUL).
        if any(bad_text(value) for value in request.match_info.values()):
            raise web.HTTPNotFound()
        return await handler(request)
    except LivecartError as exc:
        headers = {}
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        elif exc.status == 503:  # a dependency is down: worth trying again shortly
            headers["Retry-After"] = "1"
        response = json_response(exc.body(), status=exc.status, headers=headers)
        if exc.status == 408:  # the rest of a stalled body may still come: not on this connection
            response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _AIOHTTP_CODES.get(exc.status, "http_error")
        message = exc.reason if exc.status != 404 else f"no such resource: {request.path}"
        if exc.status == 405:
            message = f"{request.method} is not allowed here"
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow",)}
        return json_response(
            {"error": {"code": code, "message": message}}, status=exc.status, headers=headers
        )
    except InvalidValue as exc:  # a value the database cannot store (e.g. a NUL in text)
        log(error_log, logging.WARNING, "value refused by the database", path=request.path, error=str(exc))
        refused = Invalid("body", "a value of this request cannot be stored", code="invalid_value")
        return json_response(refused.body(), status=refused.status)
    except StoreError as exc:  # the database is down or unwell: a dependency, not a bug
        log(
            error_log,
            logging.ERROR,
            "database error",
            method=request.method,
            path=request.path,
            error=str(exc),
        )
        down = Unavailable("the database does not answer; try again", code="database_unavailable")
        return json_response(down.body(), status=down.status, headers={"Retry-After": "1"})
    except Exception:
        error_log.exception(
            "unhandled error", extra={"fields": {"method": request.method, "path": request.path}}
        )
        return json_response(
            {"error": {"code": "internal_error", "message": "something went wrong on our side"}},
            status=500,
        )
