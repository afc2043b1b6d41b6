"""The pages a person opens: the index, a host's studio, a viewer's watch page, a show's replay
and the sales dashboard of a show's brands and host.

Each is one HTML file under static/ with its ES modules and one stylesheet beside it; no build
step and nothing fetched from elsewhere at run time (Stripe.js excepted, which Stripe requires
to be loaded from its own site and which the watch page asks for only when an order is paid
through Stripe). The pages read the stream id from their own path and everything else from
the public API, so the same files serve every stream. The policy header keeps scripts to this
origin: chat and product text reach the page as text, and even a slip could not run a script.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from core.http import Handler, Route

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' https://js.stripe.com",
        "frame-src https://js.stripe.com https://hooks.stripe.com",
        "connect-src 'self' ws: wss: https://api.stripe.com",
        "img-src * data: blob:",
        "media-src 'self' blob:",
        "style-src 'self' 'unsafe-inline'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": _POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Pages change with each release; the browser asks again (an unchanged file answers 304).
    "Cache-Control": "no-cache",
}


def _page(name: str) -> Handler:
    """A handler that sends static/`name` with the pages' headers."""

    async def send(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / name, headers=HEADERS)

    return send


ROUTES = [
    Route(
        "GET",
        "/",
        _page("index.html"),
        "Index page: live, scheduled and recent streams",
        "pages",
        response_content_type="text/html",
    ),
    Route(
        "GET",
        "/studio/{stream_id}",
        _page("studio.html"),
        "The host's studio: preview, go live, lineup, flash sales, chat moderation",
        "pages",
        response_content_type="text/html",
    ),
    Route(
        "GET",
        "/watch/{stream_id}",
        _page("watch.html"),
        "The viewer's page: video, chat, hearts, the pinned product and Buy",
        "pages",
        response_content_type="text/html",
    ),
    Route(
        "GET",
        "/replay/{stream_id}",
        _page("replay.html"),
        "A show's replay: the recording, with its pins, sales and chat as the picture reaches them",
        "pages",
        response_content_type="text/html",
    ),
    Route(
        "GET",
        "/dashboard/{stream_id}",
        _page("dashboard.html"),
        "A brand's (or the host's) live sales dashboard: tiles, minute chart, products, CSV",
        "pages",
        response_content_type="text/html",
    ),
]
