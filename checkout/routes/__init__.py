"""HTTP edge of checkout: parse, call the domain, shape the answer. One module per noun."""

from __future__ import annotations

from checkout.routes import catalog, figures, grants, orders, sales, webhooks

ROUTES = [*catalog.ROUTES, *grants.ROUTES, *sales.ROUTES, *figures.ROUTES, *orders.ROUTES, *webhooks.ROUTES]
