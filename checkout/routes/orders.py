"""HTTP edge of orders: buy, read, cancel, refund, and the demo provider's pay button."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
from aiohttp import web

from checkout.app import SHOP, Shop
from checkout.orders import MAX_QUANTITY, Orders
from checkout.payments import PaymentProvider
from checkout.records import Order, OrderStatus
from core.bodies import convert_fields
from core.http import Route, json_response, principal, read_json
from core.identity import Account, Role, require

# What a viewer (or the admin) may do to one order: read it, cancel, refund, pay (demo).
OrderAction = Callable[[Account | None, str], Awaitable[Order]]


class NewOrder(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    stream_id: str
    product_id: str
    quantity: Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY)] = 1
    sale_id: str | None = None  # the sale the buyer saw; omitted: the current one, if any


class PaymentOut(msgspec.Struct):
    provider: str
    intent_id: str | None
    client_secret: str | None
    publishable_key: str | None


class OrderOut(msgspec.Struct):
    id: str
    viewer_id: str
    stream_id: str
    product_id: str
    sale_id: str | None
    quantity: int
    unit_price: int
    amount: int
    currency: str
    status: str
    created_at: float
    expires_at: float
    payment: PaymentOut
    channel: str  # "live", or "replay": bought from the replay after the show ended


def order_view(order: Order, provider: PaymentProvider) -> OrderOut:
    return OrderOut(
        id=order.id,
        viewer_id=order.viewer_id,
        stream_id=order.stream_id,
        product_id=order.product_id,
        sale_id=order.sale_id,
        quantity=order.quantity,
        unit_price=order.unit_price,
        amount=order.amount,
        currency=order.currency,
        status=str(order.status),
        created_at=order.created_at,
        expires_at=order.expires_at,
        payment=PaymentOut(
            provider=order.provider,
            intent_id=order.intent_id,
            # the secret only while it can still be used to pay
            client_secret=order.client_secret if order.status is OrderStatus.PENDING_PAYMENT else None,
            publishable_key=provider.publishable_key,
        ),
        channel=order.channel,
    )


async def place_order(request: web.Request) -> web.Response:
    who = await principal(request)
    require(who, Role.VIEWER)
    new = await read_json(request, NewOrder)
    shop = request.app[SHOP]
    order, created = await shop.orders.place(
        who,
        request.headers.get("Idempotency-Key"),
        stream_id=new.stream_id,
        product_id=new.product_id,
        quantity=new.quantity,
        sale_id=new.sale_id,
    )
    return json_response(order_view(order, shop.provider), 201 if created else 200)


class RoomFields(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A room's `buy` frame: a new order without its stream (the room's) and key (the frame's)."""

    product_id: str
    quantity: Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY)] = 1
    sale_id: str | None = None


class RoomCheckout:
    """Buying from a stream's room socket (chat.subjects.Checkout): the same domain call, rules
    and idempotency as `POST /api/orders`, the order in the same shape."""

    def __init__(self, shop: Shop) -> None:
        self._shop = shop

    async def buy(
        self, user: Account, room: str, key: str, fields: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        require(user, Role.VIEWER)
        new = convert_fields(fields, RoomFields)
        order, created = await self._shop.orders.place(
            user, key, stream_id=room, product_id=new.product_id, quantity=new.quantity, sale_id=new.sale_id
        )
        body: dict[str, Any] = msgspec.to_builtins(order_view(order, self._shop.provider))
        return body, created


async def _order_answer(request: web.Request, act: Callable[[Orders], OrderAction]) -> web.Response:
    """One order by its id, acted on by the caller (read, cancel, refund, demo-pay)."""
    shop = request.app[SHOP]
    order = await act(shop.orders)(await principal(request), request.match_info["order_id"])
    return json_response(order_view(order, shop.provider))


async def get_order(request: web.Request) -> web.Response:
    return await _order_answer(request, lambda orders: orders.get)


async def cancel_order(request: web.Request) -> web.Response:
    return await _order_answer(request, lambda orders: orders.cancel)


async def refund_order(request: web.Request) -> web.Response:
    return await _order_answer(request, lambda orders: orders.refund)


async def demo_pay(request: web.Request) -> web.Response:
    return await _order_answer(request, lambda orders: orders.pay_demo)


_BUYER = ("viewer (owner)",)

ROUTES = [
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
