"""HTTP edge of flash sales: a host starts one on the stream's product, or ends it early."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from checkout.app import SHOP
from checkout.orders import MAX_QUANTITY
from core.events import SaleOut
from core.http import Route, json_response, principal, read_json


class NewSale(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    product_id: str
    price: Annotated[int, msgspec.Meta(ge=0, le=10**12)]
    quantity: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
    duration_s: Annotated[float, msgspec.Meta(gt=0, le=24 * 3600)]
    per_viewer_limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY)] = 1


async def start_sale(request: web.Request) -> web.Response:
    who = await principal(request)
    sales = request.app[SHOP].sales
    stream_id = request.match_info["stream_id"]
    await sales.own_stream(who, stream_id)  # who may, before what: a stranger learns nothing
    new = await read_json(request, NewSale)
    sale = await sales.start(
        who,
        stream_id,
        product_id=new.product_id,
        price=new.price,
        quantity=new.quantity,
        duration_s=new.duration_s,
        per_viewer_limit=new.per_viewer_limit,
    )
    return json_response(await sales.view(sale), 201)


async def end_sale(request: web.Request) -> web.Response:
    sales = request.app[SHOP].sales
    sale = await sales.end(
        await principal(request), request.match_info["stream_id"], request.match_info["sale_id"]
    )
    return json_response(await sales.view(sale))


_OWNER = ("host (owner)", "admin")

ROUTES = [
    Route(
        "POST",
        "/api/streams/{stream_id}/sales",
        start_sale,
        "Start a flash sale",
        "checkout",
        roles=_OWNER,
        body=NewSale,
        response=SaleOut,
        status=201,
        errors=(400, 401, 403, 404, 409, 413, 415, 422),
    ),
    Route(
        "DELETE",
        "/api/streams/{stream_id}/sales/{sale_id}",
        end_sale,
        "End a flash sale early",
        "checkout",
        roles=_OWNER,
        response=SaleOut,
        errors=(401, 403, 404),
    ),
]
