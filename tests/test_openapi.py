"""The OpenAPI document covers every route the server answers."""

from __future__ import annotations

import re

from tests.conftest import Api


async def test_every_served_route_is_documented(api: Api) -> None:
    _, document = await api.call("GET", "/api/openapi.json", expect=200)
    assert document["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    served = set()
    for route in api.client.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method in ("HEAD", "OPTIONS") or path is None or "prefix" in info:
            continue  # HEAD mirrors GET; OPTIONS is CORS; static files are not the API
        served.add((path, route.method))
    missing = served - documented
    assert not missing, f"routes missing from /api/openapi.json: {sorted(missing)}"
    assert documented - served == set(), "documented routes that are not served"


async def test_documented_shapes_resolve(api: Api) -> None:
    _, document = await api.call("GET", "/api/openapi.json", expect=200)
    schemas = document["components"]["schemas"]
    refs = set(re.findall(r'"\$ref": ?"#/components/schemas/(\w+)"', str(document).replace("'", '"')))
    assert refs and refs <= set(schemas)
    product = schemas["ProductOut"]["properties"]
    assert set(product) == {
        "id",
        "brand_id",
        "title",
        "price",
        "currency",
        "stock",
        "image_url",
        "description",
        "min_price",
    }
    assert document["paths"]["/api/products"]["post"]["responses"]["201"]
    assert "422" in document["paths"]["/api/products"]["post"]["responses"]
