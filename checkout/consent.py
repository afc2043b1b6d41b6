"""The rules of consent that every part featuring a product applies: a host needs the brand's
grant (403 `not_granted`); a sale keeps to the product's floor and the grant's cap (422
`below_min_price`, `over_max_units`). Managing grants is checkout/grants.py."""

from __future__ import annotations

from collections.abc import Sequence

from checkout.catalog_sql import ProductStore
from checkout.grants_sql import GrantStore
from checkout.records import Grant, Product
from core.errors import Forbidden, Invalid


async def require_grants(grants: GrantStore, host_id: str, products: Sequence[Product]) -> dict[str, Grant]:
    """The host's grants from the brands of `products`, by brand; 403 `not_granted` when a
    brand has not granted this host."""
    held = await grants.for_host(host_id, [p.brand_id for p in products])
    for product in products:
        if product.brand_id not in held:
            raise Forbidden(
                f"the brand of {product.title!r} has not granted this host its products",
                code="not_granted",
            )
    return held


def check_sale_terms(product: Product, grant: Grant, *, price: int, quantity: int) -> None:
    """422 when a sale would go under the product's floor or over the grant's cap."""
    if price < product.min_price:
        raise Invalid(
            "price",
            f"the brand's lowest sale price for this product is {product.min_price}",
            code="below_min_price",
        )
    if grant.max_units is not None and quantity > grant.max_units:
        raise Invalid(
            "quantity",
            f"the brand lets one sale offer at most {grant.max_units} units",
            code="over_max_units",
        )


async def may_feature(
    grants: GrantStore, products: ProductStore, host_id: str, product_ids: Sequence[str]
) -> None:
    """403 `not_granted` unless every brand of `product_ids` has granted `host_id`."""
    await require_grants(grants, host_id, await products.get_products(product_ids))
