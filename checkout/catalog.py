"""The catalog: products that brands sell, who may create and change them, and how they look.

A brand adds and changes its own products; the admin may act for any brand. Streams show
products as `ProductOut` cards (core/events.py: pins carry them), which `cards()` builds for
the streams through the protocol they declare.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from checkout.catalog_sql import ProductStore
from checkout.consent import may_feature
from checkout.currencies import CURRENCIES
from checkout.grants_sql import GrantStore
from checkout.records import Product
from core.accounts import AccountStore
from core.errors import Invalid, NotFound
from core.events import ProductOut
from core.identity import Account, Role, forbid_unless, require, require_owner

MAX_PRICE = 10**12  # minor units; far above any real price, below float-unsafe integers
MAX_STOCK = 10**9


# -- what a valid product field is (the HTTP shapes call these as they parse) ---------------------
def check_currency(value: str) -> str:
    code = value.upper()
    if code not in CURRENCIES:
        raise Invalid("currency", f"{value!r} is not an ISO 4217 currency code", code="invalid_field")
    return code


def check_image_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid("image_url", "must be an http(s) URL", code="invalid_field")
    return value


def check_title(value: str) -> str:
    if not value.strip():
        raise Invalid("title", "must not be blank", code="invalid_field")
    return value.strip()


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
        min_price=product.min_price,
    )


def _check_floor(price: int, min_price: int) -> None:
    if min_price > price:
        raise Invalid(
            "min_price", "the lowest sale price cannot be above the product's price", code="invalid_field"
        )


class Catalog:
    def __init__(self, products: ProductStore, accounts: AccountStore, grants: GrantStore) -> None:
        self.products = products
        self._accounts = accounts
        self._grants = grants

    async def create(
        self,
        principal: Account | None,
        *,
        title: str,
        price: int,
        currency: str,
        stock: int,
        image_url: str | None = None,
        description: str | None = None,
        brand_id: str | None = None,
        min_price: int = 0,
    ) -> Product:
        who = require(principal, Role.BRAND, Role.ADMIN)
        _check_floor(price, min_price)
        if who.role is Role.ADMIN:
            if not brand_id:
                raise Invalid("brand_id", "an admin must say which brand the product belongs to")
            brand = await self._accounts.get_account(brand_id)
            if brand is None or brand.role is not Role.BRAND:
                raise Invalid("brand_id", f"no brand with id {brand_id!r}", code="unknown_brand")
            owner = brand.id
        else:
            forbid_unless(brand_id in (None, who.id), "a brand can only add its own products")
            owner = who.id
        return await self.products.create_product(
            brand_id=owner,
            title=title,
            price=price,
            currency=currency,
            stock=stock,
            image_url=image_url,
            description=description,
            min_price=min_price,
        )

    async def get(self, product_id: str) -> Product:
        product = await self.products.get_product(product_id)
        if product is None:
            raise NotFound(f"no product with id {product_id!r}", code="product_not_found")
        return product

    async def check_can_edit(self, principal: Account | None, product_id: str) -> Product:
        who = require(principal, Role.BRAND, Role.ADMIN)
        product = await self.get(product_id)
        require_owner(who, product.brand_id, "only the brand that owns this product may change it")
        return product

    async def update(self, principal: Account | None, product_id: str, changes: Mapping[str, Any]) -> Product:
        product = await self.check_can_edit(principal, product_id)
        if not changes:
            return product
        _check_floor(changes.get("price", product.price), changes.get("min_price", product.min_price))
        updated = await self.products.update_product(product_id, changes)
        if updated is None:  # deleted between the two calls
            raise NotFound(f"no product with id {product_id!r}", code="product_not_found")
        return updated

    async def may_feature(self, host_id: str, product_ids: Sequence[str]) -> None:
        """403 `not_granted` unless every brand of `product_ids` has granted `host_id`."""
        await may_feature(self._grants, self.products, host_id, product_ids)

    async def cards(self, product_ids: Sequence[str]) -> list[ProductOut]:
        """The products that exist among product_ids, as cards, in the order asked."""
        return [product_view(p) for p in await self.products.get_products(product_ids)]
