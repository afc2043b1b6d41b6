"""HTTP edge of streams: create, list, read, end, pin and unpin."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from core.errors import Invalid
from core.events import ProductOut
from core.http import Route, json_response, principal, read_json
from streaming.app import SHOW
from streaming.records import Stream
from streaming.streams import MAX_PRODUCTS_PER_STREAM
from streaming.views import StreamOut


class NewStream(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    products: Annotated[list[str], msgspec.Meta(max_length=MAX_PRODUCTS_PER_STREAM)] = []

    def __post_init__(self) -> None:
        self.title = self.title.strip()
        if not self.title:
            raise Invalid("title", "must not be blank", code="invalid_field")
        if len(set(self.products)) != len(self.products):
            raise Invalid("products", "lists a product more than once", code="invalid_field")


class Pin(msgspec.Struct, forbid_unknown_fields=True):
    product_id: str


class PinnedOut(msgspec.Struct):
    pinned: ProductOut


class StreamList(msgspec.Struct):
    streams: list[StreamOut]


async def _body(request: web.Request, stream: Stream) -> StreamOut:
    (view,) = await request.app[SHOW].views.views([stream])
    return view


async def create_stream(request: web.Request) -> web.Response:
    who = await principal(request)
    new = await read_json(request, NewStream)
    stream = await request.app[SHOW].streams.create(who, new.title, new.products)
    return json_response(await _body(request, stream), 201)


async def list_streams(request: web.Request) -> web.Response:
    show = request.app[SHOW]
    return json_response(StreamList(streams=await show.views.views(await show.streams.listing())))


async def get_stream(request: web.Request) -> web.Response:
    stream = await request.app[SHOW].streams.get(request.match_info["stream_id"])
    return json_response(await _body(request, stream))


async def end_stream(request: web.Request) -> web.Response:
    stream = await request.app[SHOW].streams.end(await principal(request), request.match_info["stream_id"])
    return json_response(await _body(request, stream))


async def pin_product(request: web.Request) -> web.Response:
    who = await principal(request)
    streams = request.app[SHOW].streams
    await streams.check_owner(who, request.match_info["stream_id"])
    pin = await read_json(request, Pin)
    product = await streams.pin(who, request.match_info["stream_id"], pin.product_id)
    return json_response(PinnedOut(pinned=product))


async def unpin_product(request: web.Request) -> web.Response:
    await request.app[SHOW].streams.unpin(await principal(request), request.match_info["stream_id"])
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
