"""HTTP edge of accounts and the catalog: parse, call the domain, shape the answer."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from checkout.accounts import create_account, require
from checkout.catalog import NewProduct, ProductOut, ProductPatch, product_view
from checkout.checkout import NewOrder, NewSale, OrderOut, SaleOut
from checkout.store import Role
from server import keys
from server.bodies import read_body, read_json
from server.errors import Invalid, NotFound
from server.routing import Handler, Route, json_response, principal


class NewAccount(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]

    def __post_init__(self) -> None:
        self.name = self.name.strip()
        if not self.name:
            raise Invalid("name", "must not be blank", code="invalid_field")


class AccountOut(msgspec.Struct):
    id: str
    name: str
    role: str
    token: str


def _account_creator(role: Role, needs_admin: bool) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        if needs_admin:
            require(await principal(request), Role.ADMIN)
        new = await read_json(request, NewAccount)
        account, token = await create_account(request.app[keys.STORE], role, new.name)
        return json_response(
            AccountOut(id=account.id, name=account.name, role=str(account.role), token=token), 201
        )

    return handler


async def create_product(request: web.Request) -> web.Response:
    who = await principal(request)
    new = await read_json(request, NewProduct)
    product = await request.app[keys.CATALOG].create(who, new)
    return json_response(product_view(product), 201)


async def get_product(request: web.Request) -> web.Response:
    product = await request.app[keys.CATALOG].get(request.match_info["product_id"])
    return json_response(product_view(product))


async def patch_product(request: web.Request) -> web.Response:
    who = await principal(request)
    catalog = request.app[keys.CATALOG]
    # Authorize before reading the body: a stranger learns nothing from a bad body.
    await catalog.check_can_edit(who, request.match_info["product_id"])
    patch = await read_json(request, ProductPatch)
    product = await catalog.update(who, request.match_info["product_id"], patch)
    return json_response(product_view(product))


ROUTES = [
    Route(
        "POST",
        "/api/brands",
        _account_creator(Role.BRAND, True),
        "Create a brand",
        "accounts",
        roles=("admin",),
        body=NewAccount,
        response=AccountOut,
        status=201,
        errors=(400, 401, 403, 413, 415, 422),
    ),
    Route(
        "POST",
        "/api/hosts",
        _account_creator(Role.HOST, True),
        "Create a host",
        "accounts",
        roles=("admin",),
        body=NewAccount,
        response=AccountOut,
        status=201,
        errors=(400, 401, 403, 413, 415, 422),
    ),
    Route(
        "POST",
        "/api/viewers",
        _account_creator(Role.VIEWER, False),
        "Create a light viewer session",
        "accounts",
        body=NewAccount,
        response=AccountOut,
        status=201,
        errors=(400, 413, 415, 422),
    ),
    Route(
        "POST",
        "/api/products",
        create_product,
        "Create a product",
        "catalog",
        roles=("brand", "admin"),
        body=NewProduct,
        response=ProductOut,
        status=201,
        errors=(400, 401, 403, 413, 415, 422),
    ),
    Route(
        "GET",
        "/api/products/{product_id}",
        get_product,
        "Get a product",
        "catalog",
        response=ProductOut,
        errors=(404,),
    ),
    Route(
        "PATCH",
        "/api/products/{product_id}",
        patch_product,
        "Change a product",
        "catalog",
        roles=("brand", "admin"),
        body=ProductPatch,
        response=ProductOut,
        errors=(400, 401, 403, 404, 413, 415, 422),
    ),
]


# -- sales and orders -------------------------------------------------------------------------
async def start_sale(request: web.Request) -> web.Response:
    who = await principal(request)
    checkout = request.app[keys.CHECKOUT]
    stream_id = request.match_info["stream_id"]
    await checkout.own_stream(who, stream_id)  # who may, before what: a stranger learns nothing
    new = await read_json(request, NewSale)
    sale = await checkout.start_sale(who, stream_id, new)
    return json_response(await checkout.sale_view(sale), 201)


async def end_sale(request: web.Request) -> web.Response:
    checkout = request.app[keys.CHECKOUT]
    sale = await checkout.end_sale(
        await principal(request), request.match_info["stream_id"], request.match_info["sale_id"]
    )
    return json_response(await checkout.sale_view(sale))


async def place_order(request: web.Request) -> web.Response:
    who = await principal(request)
    require(who, Role.VIEWER)
    new = await read_json(request, NewOrder)
    checkout = request.app[keys.CHECKOUT]
    order, created = await checkout.place_order(who, request.headers.get("Idempotency-Key"), new)
    return json_response(checkout.order_view(order), 201 if created else 200)


async def get_order(request: web.Request) -> web.Response:
    checkout = request.app[keys.CHECKOUT]
    order = await checkout.get_order(await principal(request), request.match_info["order_id"])
    return json_response(checkout.order_view(order))


async def cancel_order(request: web.Request) -> web.Response:
    checkout = request.app[keys.CHECKOUT]
    order = await checkout.cancel(await principal(request), request.match_info["order_id"])
    return json_response(checkout.order_view(order))


async def refund_order(request: web.Request) -> web.Response:
    checkout = request.app[keys.CHECKOUT]
    order = await checkout.refund(await principal(request), request.match_info["order_id"])
    return json_response(checkout.order_view(order))


async def demo_pay(request: web.Request) -> web.Response:
    checkout = request.app[keys.CHECKOUT]
    order = await checkout.pay_demo(await principal(request), request.match_info["order_id"])
    return json_response(checkout.order_view(order))


_OWNER = ("host (owner)", "admin")
_BUYER = ("viewer (owner)",)

ROUTES += [
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
    Route(
        "POST",
        "/api/orders",
        place_order,
        "Buy: reserve units and open a payment",
        "checkout",
        roles=("viewer",),
        body=NewOrder,
        response=OrderOut,
        status=201,
        errors=(400, 401, 403, 409, 413, 415, 422, 503),
        headers=("Idempotency-Key",),
    ),
    Route(
        "GET",
        "/api/orders/{order_id}",
        get_order,
        "Get an order",
        "checkout",
        roles=(*_BUYER, "admin"),
        response=OrderOut,
        errors=(401, 403, 404),
    ),
    Route(
        "POST",
        "/api/orders/{order_id}/cancel",
        cancel_order,
        "Cancel an unpaid order",
        "checkout",
        roles=_BUYER,
        response=OrderOut,
        errors=(401, 403, 404, 409),
    ),
    Route(
        "POST",
        "/api/orders/{order_id}/refund",
        refund_order,
        "Refund a paid order (its figures leave GMV)",
        "checkout",
        roles=("admin",),
        response=OrderOut,
        errors=(401, 403, 404, 409),
    ),
    Route(
        "POST",
        "/api/orders/{order_id}/demo-pay",
        demo_pay,
        "Pay an order with the demo provider (moves no money)",
        "checkout",
        roles=_BUYER,
        response=OrderOut,
        errors=(401, 403, 404, 409),
    ),
]


async def stripe_webhook(request: web.Request) -> web.Response:
    webhooks = request.app[keys.WEBHOOKS]
    if webhooks is None:
        raise NotFound("this server takes no Stripe payments", code="stripe_not_configured")
    payload = await read_body(request)  # the raw bytes: the signature covers them exactly
    return json_response(await webhooks.receive(payload, request.headers.get("Stripe-Signature")))


ROUTES.append(
    Route(
        "POST",
        "/api/webhooks/stripe",
        stripe_webhook,
        "Stripe events (signature-verified)",
        "checkout",
        roles=("Stripe",),
        errors=(400, 404, 413, 415),
    )
)
