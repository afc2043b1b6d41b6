"""The stock ticker: rooms hear how many units are left at most once per tick.

In a rush every tap moves the stock: one event per tap would cost two Redis round trips on
the buy path and flood every viewer's socket with numbers that are stale a millisecond
later. A buy only notes that its product's stock moved; `announce()`, run every tick by the
checkout's chores, tells each room the latest count, and nudges the stream's sales feeds
(checkout/feed.py) once: the dashboards re-read what the moves (and payments) changed.
"""

from __future__ import annotations

from chat.announce import Publisher, Watcher, announce, nudge
from checkout.catalog_sql import ProductStore
from checkout.figures import sales_key
from checkout.records import Order
from checkout.stock import Stock
from core import events


class StockTicker:
    def __init__(self, stock: Stock, products: ProductStore, rooms: Publisher, feeds: Watcher) -> None:
        self._stock = stock
        self._products = products
        self._rooms = rooms
        self._feeds = feeds
        # product → (stream, sale) whose stock changed since the last announcement
        self._changed: dict[str, tuple[str, str | None]] = {}

    def note(self, order: Order) -> None:
        self._changed[order.product_id] = (order.stream_id, order.sale_id)

    async def announce(self) -> None:
        changed, self._changed = self._changed, {}
        for product_id, (stream_id, sale_id) in changed.items():
            if sale_id is not None:
                remaining = (await self._stock.counts(sale_id)).remaining
            else:
                product = await self._products.get_product(product_id)
                remaining = product.stock if product else 0
            left = events.StockLeft(product_id=product_id, remaining=remaining)
            await announce(self._rooms, stream_id, events.STOCK, left)
        for stream_id in {stream_id for stream_id, _ in changed.values()}:
            await nudge(self._feeds, sales_key(stream_id))  # its dashboards re-read
