"""The catalog: products that brands sell, who may create and change them, and their shape."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec

from checkout.accounts import forbid_unless, require
from checkout.currencies import CURRENCIES
from checkout.store import Account, Product, Role, Store
from server.errors import Invalid, NotFound

MAX_PRICE = 10**12  # minor units; far above any real price, below float-unsafe integers
MAX_STOCK = 10**9

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Price = Annotated[int, msgspec.Meta(ge=0, le=MAX_PRICE)]
Stock = Annotated[int, msgspec.Meta(ge=0, le=MAX_STOCK)]
Currency = Annotated[str, msgspec.Meta(min_length=3, max_length=3)]
ImageUrl = Annotated[str, msgspec.Meta(max_length=2000)]
Description = Annotated[str, msgspec.Meta(max_length=5000)]


def _check_currency(value: str) -> str:
    code = value.upper()
    if code not in CURRENCIES:
        raise Invalid("currency", f"{value!r} is not an ISO 4217 currency code", code="invalid_field")
    return code


def _check_image_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid("image_url", "must be an http(s) URL", code="invalid_field")
    return value


def _check_title(value: str) -> str:
    if not value.strip():
        raise Invalid("title", "must not be blank", code="invalid_field")
    return value.strip()


class NewProduct(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    title: Title
    price: Price
    currency: Currency
    stock: Stock
    image_url: ImageUrl | None = None
    description: Description | None = None
    brand_id: str | None = None  # admin only: which brand the product belongs to

    def __post_init__(self) -> None:
        self.title = _check_title(self.title)
        self.currency = _check_currency(self.currency)
        self.image_url = _check_image_url(self.image_url)


class ProductPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    title: Title | msgspec.UnsetType = msgspec.UNSET
    price: Price | msgspec.UnsetType = msgspec.UNSET
    currency: Currency | msgspec.UnsetType = msgspec.UNSET
    stock: Stock | msgspec.UnsetType = msgspec.UNSET
    image_url: ImageUrl | msgspec.UnsetType | None = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET

    def __post_init__(self) -> None:
        if isinstance(self.title, str):
            self.title = _check_title(self.title)
        if isinstance(self.currency, str):
            self.currency = _check_currency(self.currency)
        if not isinstance(self.image_url, msgspec.UnsetType):
            self.image_url = _check_image_url(self.image_url)

    def changes(self) -> dict[str, Any]:
        return {
            name: getattr(self, name)
            for name in self.__struct_fields__
            if getattr(self, name) is not msgspec.UNSET
        }


class ProductOut(msgspec.Struct):
    id: str
    brand_id: str
    title: str
    price: int
    currency: str
    stock: int
    image_url: str | None
    description: str | None


def product_view(product: Product) -> ProductOut:
    return ProductOut(
        id=product.id,
        brand_id=product.brand_id,
        title=product.title,
        price=product.price,
        currency=product.currency,
        stock=product.stock,
        image_url=product.image_url,
        description=product.description,
    )


class Catalog:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(self, principal: Account | None, new: NewProduct) -> Product:
        principal = require(principal, Role.BRAND, Role.ADMIN)
        if principal.role is Role.ADMIN:
            if not new.brand_id:
                raise Invalid("brand_id", "an admin must say which brand the product belongs to")
            brand = await self._store.get_account(new.brand_id)
            if brand is None or brand.role is not Role.BRAND:
                raise Invalid("brand_id", f"no brand with id {new.brand_id!r}", code="unknown_brand")
            brand_id = brand.id
        else:
            forbid_unless(new.brand_id in (None, principal.id), "a brand can only add its own products")
            brand_id = principal.id
        return await self._store.create_product(
            brand_id=brand_id,
            title=new.title,
            price=new.price,
            currency=new.currency,
            stock=new.stock,
            image_url=new.image_url,
            description=new.description,
        )

    async def get(self, product_id: str) -> Product:
        product = await self._store.get_product(product_id)
        if product is None:
            raise NotFound(f"no product with id {product_id!r}", code="product_not_found")
        return product

    async def check_can_edit(self, principal: Account | None, product_id: str) -> Product:
        who = require(principal, Role.BRAND, Role.ADMIN)
        product = await self.get(product_id)
        forbid_unless(
            who.role is Role.ADMIN or product.brand_id == who.id,
            "only the brand that owns this product may change it",
        )
        return product

    async def update(self, principal: Account | None, product_id: str, patch: ProductPatch) -> Product:
        product = await self.check_can_edit(principal, product_id)
        changes = patch.changes()
        if not changes:
            return product
        updated = await self._store.update_product(product_id, changes)
        if updated is None:  # deleted between the two calls
            raise NotFound(f"no product with id {product_id!r}", code="product_not_found")
        return updated
