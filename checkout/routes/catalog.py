"""HTTP edge of the catalog: create, read and change products."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from aiohttp import web

from checkout.app import SHOP
from checkout.catalog import (
    MAX_PRICE,
    MAX_STOCK,
    check_currency,
    check_image_url,
    check_title,
    product_view,
)
from core.events import ProductOut
from core.http import Route, json_response, principal, read_json

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Price = Annotated[int, msgspec.Meta(ge=0, le=MAX_PRICE)]
StockCount = Annotated[int, msgspec.Meta(ge=0, le=MAX_STOCK)]
Currency = Annotated[
    str, msgspec.Meta(min_length=3, max_length=3, examples=["USD"], description="an ISO 4217 code, any case")
]
ImageUrl = Annotated[str, msgspec.Meta(max_length=2000)]
Description = Annotated[str, msgspec.Meta(max_length=5000)]


class NewProduct(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    title: Title
    price: Price
    currency: Currency
    stock: StockCount
    image_url: ImageUrl | None = None
    description: Description | None = None
    brand_id: str | None = None  # admin only: which brand the product belongs to
    min_price: Price = 0  # the lowest price a sale of it may ask

    def __post_init__(self) -> None:
        self.title = check_title(self.title)
        self.currency = check_currency(self.currency)
        self.image_url = check_image_url(self.image_url)


class ProductPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    title: Title | msgspec.UnsetType = msgspec.UNSET
    price: Price | msgspec.UnsetType = msgspec.UNSET
    currency: Currency | msgspec.UnsetType = msgspec.UNSET
    stock: StockCount | msgspec.UnsetType = msgspec.UNSET
    image_url: ImageUrl | msgspec.UnsetType | None = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET
    min_price: Price | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        if isinstance(self.title, str):
            self.title = check_title(self.title)
        if isinstance(self.currency, str):
            self.currency = check_currency(self.currency)
        if not isinstance(self.image_url, msgspec.UnsetType):
            self.image_url = check_image_url(self.image_url)

    def changes(self) -> dict[str, Any]:
        return {
            name: getattr(self, name)
            for name in self.__struct_fields__
            if getattr(self, name) is not msgspec.UNSET
        }


async def create_product(request: web.Request) -> web.Response:
    who = await principal(request)
    new = await read_json(request, NewProduct)
    product = await request.app[SHOP].catalog.create(
        who,
        title=new.title,
        price=new.price,
        currency=new.currency,
        stock=new.stock,
        image_url=new.image_url,
        description=new.description,
        brand_id=new.brand_id,
        min_price=new.min_price,
    )
    return json_response(product_view(product), 201)


async def get_product(request: web.Request) -> web.Response:
    product = await request.app[SHOP].catalog.get(request.match_info["product_id"])
    return json_response(product_view(product))


async def patch_product(request: web.Request) -> web.Response:
    who = await principal(request)
    catalog = request.app[SHOP].catalog
    # Authorize before reading the body: a stranger learns nothing from a bad body.
    await catalog.check_can_edit(who, request.match_info["product_id"])
    patch = await read_json(request, ProductPatch)
    product = await catalog.update(who, request.match_info["product_id"], patch.changes())
    return json_response(product_view(product))


ROUTES = [
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
