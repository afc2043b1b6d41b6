"""HTTP edge of sales figures: a stream's snapshot, its live feed and its export for its host,
its brands and the admin; a brand's figures across its shows."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import WSMsgType, web

from checkout.app import SHOP
from checkout.feed import Subscriber
from checkout.figures import SalesFigures
from checkout.reports import BrandSales
from core.errors import BadRequest
from core.http import WEBSOCKETS, Route, json_response, principal

HEARTBEAT_S = 25.0


async def stream_figures(request: web.Request) -> web.Response:
    figures = await request.app[SHOP].figures.of_stream(
        await principal(request), request.match_info["stream_id"]
    )
    return json_response(figures)


async def figures_socket(request: web.Request) -> web.StreamResponse:
    """The snapshot, then a delta per change. Refusals (401, 403, 404) come before the upgrade."""
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, compress=False, max_msg_size=4096)
    if not ws.can_prepare(request).ok:
        raise BadRequest("this endpoint speaks WebSocket only", code="websocket_required")
    feed = request.app[SHOP].feed
    who = await principal(request, allow_query_token=True)
    subscriber, snapshot = await feed.open(who, request.match_info["stream_id"])
    open_sockets = request.app[WEBSOCKETS]
    try:
        await ws.prepare(request)
        open_sockets.add(ws)
        await ws.send_str(snapshot)
        writer = asyncio.create_task(_write(ws, subscriber))
        try:
            async for message in ws:  # a client has nothing to say; this waits for its close
                if message.type is WSMsgType.ERROR:
                    break
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
    except ConnectionError:
        pass  # the client went away mid-write
    finally:
        open_sockets.discard(ws)
        await feed.close(subscriber)
    return ws


async def _write(ws: web.WebSocketResponse, subscriber: Subscriber) -> None:
    while (frame := await subscriber.frames.get()) is not None:
        await ws.send_str(frame)
    await ws.close(code=1013, message=b"too slow: reconnect for a fresh snapshot")


async def stream_export(request: web.Request) -> web.StreamResponse:
    stream_id = request.match_info["stream_id"]
    chunks = await request.app[SHOP].reports.export(await principal(request), stream_id)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="sales-{stream_id}.csv"',
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(request)
    async for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response


async def replay_view(request: web.Request) -> web.Response:
    await request.app[SHOP].figures.count_replay_view(request.match_info["stream_id"])
    return web.Response(status=204)


async def brand_sales(request: web.Request) -> web.Response:
    report = await request.app[SHOP].reports.brand_sales(
        await principal(request), request.query.get("from"), request.query.get("to")
    )
    return json_response(report)


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
    Route(
        "GET",
        "/api/streams/{stream_id}/sales/ws",
        figures_socket,
        "Live sales figures WebSocket (query: token): the snapshot, then a delta per change",
        "brands",
        roles=("host", "brand", "admin"),
        errors=(400, 401, 403, 404),
    ),
    Route(
        "GET",
        "/api/streams/{stream_id}/sales.csv",
        stream_export,
        "The paid and refunded orders in the caller's scope, as CSV (buyer display name only)",
        "brands",
        roles=("host", "brand", "admin"),
        response_content_type="text/csv",
        errors=(401, 403, 404),
    ),
    Route(
        "POST",
        "/api/streams/{stream_id}/replay/views",
        replay_view,
        "Count one start of an ended show's replay (the replay page says so once per play)",
        "brands",
        roles=(),
        status=204,
        errors=(404, 409),
    ),
    Route(
        "GET",
        "/api/brands/me/sales",
        brand_sales,
        "The brand's sales across its shows (query: from, to: Unix seconds or ISO 8601)",
        "brands",
        roles=("brand",),
        response=BrandSales,
        errors=(401, 403, 422),
    ),
]
