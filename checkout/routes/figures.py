"""HTTP edge of sales figures: a stream's snapshot for its host, its brands and the admin."""

from __future__ import annotations

from aiohttp import web

from checkout.app import SHOP
from checkout.figures import SalesFigures
from core.http import Route, json_response, principal


async def stream_figures(request: web.Request) -> web.Response:
    figures = await request.app[SHOP].figures.of_stream(
        await principal(request), request.match_info["stream_id"]
    )
    return json_response(figures)


ROUTES = [
    Route(
        "GET",
        "/api/streams/{stream_id}/sales",
        stream_figures,
        "A stream's sales figures: the host sees the whole show, a brand its own products' share",
        "brands",
        roles=("host", "brand", "admin"),
        response=SalesFigures,
        errors=(401, 403, 404),
    ),
]
