"""What streaming asks of the shop, declared here and answered by checkout.

A stream shows products (their cards, for its body and its pins) and may have a flash sale
running (shown in its body). Streaming never imports checkout: server/app.py hands it
checkout's catalog and sales, which fit these protocols as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from core.events import ProductOut, SaleOut


class ProductCards(Protocol):
    async def cards(self, product_ids: Sequence[str]) -> list[ProductOut]:
        """The products that exist among product_ids, in the order asked."""
        ...

    async def may_feature(self, host_id: str, product_ids: Sequence[str]) -> None:
        """Raises (403 `not_granted`) unless the products' brands let this host feature them."""
        ...


class RunningSales(Protocol):
    async def current_view(self, stream_id: str) -> SaleOut | None:
        """The stream's running sale, if it has one."""
        ...
