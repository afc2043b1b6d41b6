"""`livecart demo`: a brand, a host it grants, three products and a scheduled stream to try on."""

from __future__ import annotations

from dataclasses import dataclass

from checkout.catalog_sql import ProductStore
from checkout.grants_sql import GrantStore
from core.accounts import AccountStore, create_account
from core.db.driver import Driver
from core.identity import Role
from streaming.streams_sql import StreamStore

PRODUCTS = (  # title, price, stock, description, picture under static/demo/
    ("Silk scarf", 2900, 50, "Hand-rolled edges, 90 x 90 cm.", "scarf.svg"),
    ("Lip tint", 1500, 200, "Long-wear, three shades.", "lip-tint.svg"),
    ("Canvas tote", 3900, 30, "Heavy canvas, inside pocket.", "tote.svg"),
)


@dataclass(frozen=True)
class Demo:
    brand_token: str
    host_token: str
    stream_id: str


async def seed(db: Driver, public_url: str) -> Demo:
    """The demo's records; its products' pictures are served by this server at `public_url`."""
    accounts = AccountStore(db)
    brand, brand_token = await create_account(accounts, Role.BRAND, "Demo Brand")
    host, host_token = await create_account(accounts, Role.HOST, "Demo Host")
    products = ProductStore(db)
    product_ids = [
        (
            await products.create_product(
                brand_id=brand.id,
                title=title,
                price=price,
                currency="USD",
                stock=stock,
                image_url=f"{public_url.rstrip('/')}/static/demo/{picture}",
                description=description,
            )
        ).id
        for title, price, stock, description, picture in PRODUCTS
    ]
    await GrantStore(db).put(brand.id, host.id, max_units=None)  # the brand lets its host sell them
    stream = await StreamStore(db).create_stream(host_id=host.id, title="Demo show", product_ids=product_ids)
    return Demo(brand_token, host_token, stream.id)
