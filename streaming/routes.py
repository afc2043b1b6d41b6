"""HTTP edge of streams: create, list, read, end, pin and unpin."""

from __future__ import annotations

import msgspec
from aiohttp import web

from checkout.catalog import product_view
from server import keys
from server.bodies import read_json
from server.routing import Route, json_response, principal
from streaming.streams import NewStream, Pin, PinnedOut, StreamOut


class StreamList(msgspec.Struct):
    streams: list[StreamOut]


async def create_stream(request: web.Request) -> web.Response:
    who = await principal(request)
    streams = request.app[keys.STREAMS]
    new = await read_json(request, NewStream)
    stream = await streams.create(who, new)
    (view,) = await streams.views([stream])
    return json_response(view, 201)


async def list_streams(request: web.Request) -> web.Response:
    streams = request.app[keys.STREAMS]
    return json_response(StreamList(streams=await streams.views(await streams.listing())))


async def get_stream(request: web.Request) -> web.Response:
    streams = request.app[keys.STREAMS]
    stream = await streams.get(request.match_info["stream_id"])
    (view,) = await streams.views([stream])
    return json_response(view)


async def end_stream(request: web.Request) -> web.Response:
    streams = request.app[keys.STREAMS]
    stream = await streams.end(await principal(request), request.match_info["stream_id"])
    (view,) = await streams.views([stream])
    return json_response(view)


async def pin_product(request: web.Request) -> web.Response:
    who = await principal(request)
    streams = request.app[keys.STREAMS]
    await streams.check_owner(who, request.match_info["stream_id"])
    pin = await read_json(request, Pin)
    product = await streams.pin(who, request.match_info["stream_id"], pin.product_id)
    return json_response(PinnedOut(pinned=product_view(product)))


async def unpin_product(request: web.Request) -> web.Response:
    await request.app[keys.STREAMS].unpin(await principal(request), request.match_info["stream_id"])
    return web.Response(status=204)


_OWNER = ("host (owner)", "admin")

ROUTES = [
    Route(
        "POST",
        "/api/streams",
        create_stream,
        "Create a stream",
        "streams",
        roles=("host",),
        body=NewStream,
        response=StreamOut,
        status=201,
        errors=(400, 401, 403, 413, 415, 422),
    ),
    Route("GET", "/api/streams", list_streams, "List streams, live first", "streams", response=StreamList),
    Route(
        "GET",
        "/api/streams/{stream_id}",
        get_stream,
        "Get a stream",
        "streams",
        response=StreamOut,
        errors=(404,),
    ),
    Route(
        "POST",
        "/api/streams/{stream_id}/end",
        end_stream,
        "End a stream",
        "streams",
        roles=_OWNER,
        response=StreamOut,
        errors=(401, 403, 404),
    ),
    Route(
        "POST",
        "/api/streams/{stream_id}/pin",
        pin_product,
        "Pin one of the stream's products",
        "streams",
        roles=_OWNER,
        body=Pin,
        response=PinnedOut,
        errors=(400, 401, 403, 404, 409, 413, 415, 422),
    ),
    Route(
        "DELETE",
        "/api/streams/{stream_id}/pin",
        unpin_product,
        "Unpin the pinned product",
        "streams",
        roles=_OWNER,
        status=204,
        errors=(401, 403, 404, 409),
    ),
]
