"""Consent: a brand decides which hosts may feature its products, and how much one sale may offer.

A host may put a brand's product in a lineup, pin it or start a sale of it only while the brand
grants it (403 `not_granted`); a grant may cap each sale's quantity (`max_units`, 422
`over_max_units`), and each product may have a floor under its sale price (`min_price`, 422
`below_min_price`). Revoking a grant ends that host's running sales of the brand's products
at once. The brand grants for itself; the admin may grant for any brand.
"""

from __future__ import annotations

import time

from checkout.grants_sql import GrantStore
from checkout.records import Grant
from checkout.sales import Sales
from checkout.streams import StreamLookup
from core.accounts import AccountStore
from core.errors import Forbidden, NotFound
from core.identity import Account, Role, require


class Grants:
    def __init__(
        self,
        store: GrantStore,
        accounts: AccountStore,
        sales: Sales,
        streams: StreamLookup,
    ) -> None:
        self.store = store
        self._accounts = accounts
        self._sales = sales
        self._streams = streams

    async def acting_brand(self, principal: Account | None, brand_id: str | None) -> str:
        """The brand acted for: the caller itself (`me`), or any brand for the admin."""
        who = require(principal, Role.BRAND, Role.ADMIN)
        if brand_id is None:
            if who.role is not Role.BRAND:
                raise Forbidden(
                    "only a brand has grants of its own; the admin names the brand", code="forbidden"
                )
            return who.id
        if who.role is not Role.ADMIN and who.id != brand_id:
            raise Forbidden("a brand manages only its own grants", code="forbidden")
        brand = await self._accounts.get_account(brand_id)
        if brand is None or brand.role is not Role.BRAND:
            raise NotFound(f"no brand with id {brand_id!r}", code="brand_not_found")
        return brand.id

    async def grant(
        self, principal: Account | None, brand_id: str | None, host_id: str, max_units: int | None
    ) -> tuple[Grant, bool]:
        brand = await self.acting_brand(principal, brand_id)
        host = await self._accounts.get_account(host_id)
        if host is None or host.role is not Role.HOST:
            raise NotFound(f"no host with id {host_id!r}", code="host_not_found")
        return await self.store.put(brand, host.id, max_units)

    async def revoke(self, principal: Account | None, brand_id: str | None, host_id: str) -> None:
        """Take the grant back (if there was one) and end the host's running sales of the brand."""
        brand = await self.acting_brand(principal, brand_id)
        await self.store.delete(brand, host_id)
        now = time.time()
        for sale in await self._sales.store.running_of_brand(brand, now):
            stream = await self._streams.get_stream(sale.stream_id)
            if stream is not None and stream.host_id == host_id:
                await self._sales.close(sale, now)

    async def of_brand(self, principal: Account | None, brand_id: str | None) -> list[Grant]:
        return await self.store.of_brand(await self.acting_brand(principal, brand_id))
