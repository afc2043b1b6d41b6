"""HTTP edge of checkout: parse, call the domain, shape the answer. One module per noun."""

from __future__ import annotations

from checkout.routes import catalog, orders, sales, webhooks

ROUTES = [*catalog.ROUTES, *sales.ROUTES, *orders.ROUTES, *webhooks.ROUTES]
