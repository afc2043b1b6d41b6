"""Operations endpoints: liveness, readiness (each backend checked and named), metrics."""

from __future__ import annotations

import asyncio

import msgspec
from aiohttp import web

from core.http import METRICS, READINESS, ReadinessCheck, Route, json_response
from core.metrics import CONTENT_TYPE

CHECK_TIMEOUT_S = 2.0


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    status: str
    checks: dict[str, str]


async def healthz(request: web.Request) -> web.Response:
    return json_response(Health(status="ok"))


async def _run_check(check: ReadinessCheck) -> str:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g}s"
    except Exception as exc:
        return str(exc) or type(exc).__name__
    return "ok"


async def readyz(request: web.Request) -> web.Response:
    checks = request.app[READINESS]
    results = dict(zip(checks, await asyncio.gather(*(_run_check(c) for c in checks.values())), strict=True))
    failing = [f"{name}: {result}" for name, result in results.items() if result != "ok"]
    if failing:
        return json_response(
            {
                "error": {"code": "not_ready", "message": "; ".join(failing)},
                "status": "not_ready",
                "checks": results,
            },
            status=503,
        )
    return json_response(Readiness(status="ready", checks=results))


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE})


ROUTES = [
    Route("GET", "/healthz", healthz, "The process is up", "operations", response=Health),
    Route(
        "GET",
        "/readyz",
        readyz,
        "Every backend answers (503 names the one that does not)",
        "operations",
        response=Readiness,
        errors=(503,),
    ),
    Route("GET", "/metrics", metrics, "Prometheus metrics", "operations", response_content_type="text/plain"),
]
