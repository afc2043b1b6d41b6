"""What a show leaves behind: `GET /api/streams/{id}/sales.csv` (streamed, scoped, no card data)
and `GET /api/brands/me/sales?from=&to=` across a brand's shows."""

from __future__ import annotations

import csv
import io
import time
from datetime import datetime
from typing import Any

from checkout import reports
from tests.conftest import ADMIN_TOKEN, Api
from tests.shopping import paid


async def _csv(
    api: Api, stream: dict[str, Any], token: str | None, expect: int = 200
) -> list[dict[str, str]]:
    response = await api.client.get(
        f"/api/streams/{stream['id']}/sales.csv",
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )
    assert response.status == expect, await response.text()
    if expect != 200:
        body = await response.json()
        assert body["error"]["code"], body
        return []
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="sales-{stream["id"]}.csv"' in response.headers["Content-Disposition"]
    text = await response.text()
    assert text.startswith(",".join(reports.COLUMNS) + "\r\n")
    return list(csv.DictReader(io.StringIO(text)))


async def test_the_export_lists_paid_and_refunded_orders_in_scope(shop: Api) -> None:
    silk, canvas = await shop.account("brands", "Silk & Co"), await shop.account("brands", "Canvas Ltd")
    host = await shop.account("hosts", "Lin")
    scarf = await shop.product(silk, title="Silk scarf", price=2900)
    tote = await shop.product(canvas, title='=HYPERLINK("x")', price=3900)
    stream = await shop.stream(host, [scarf["id"], tote["id"]])
    ann = await shop.account("viewers", "Ann Lee")
    mallory = await shop.account("viewers", "=cmd|' /C calc'!A0")
    first = await paid(shop, ann, stream, scarf, 2)
    refunded = await paid(shop, mallory, stream, tote, 1)
    await shop.call("POST", f"/api/orders/{refunded}/refund", ADMIN_TOKEN, expect=200)
    status, unpaid = await shop.call(
        "POST",
        "/api/orders",
        ann["token"],
        {"stream_id": stream["id"], "product_id": scarf["id"], "quantity": 1},
        headers={"Idempotency-Key": "unpaid-1"},
    )
    assert status == 201

    rows = await _csv(shop, stream, host["token"])
    assert [(r["order_id"], r["status"]) for r in rows] == [(first, "paid"), (refunded, "refunded")]
    assert unpaid["id"] not in str(rows)
    scarf_row, tote_row = rows
    assert (scarf_row["product"], scarf_row["quantity"], scarf_row["amount"], scarf_row["currency"]) == (
        "Silk scarf",
        "2",
        "5800",
        "USD",
    )
    assert scarf_row["buyer"] == "Ann Lee" and scarf_row["paid_at"].endswith("Z")
    paid_at = datetime.fromisoformat(scarf_row["paid_at"].replace("Z", "+00:00"))
    assert abs(paid_at.timestamp() - time.time()) < 60
    # a cell a spreadsheet would run as a formula is written as text
    assert tote_row["buyer"] == "'=cmd|' /C calc'!A0" and tote_row["product"].startswith("'=")
    # no card data or tokens: the columns are the documented ones, nothing else
    assert list(rows[0]) == list(reports.COLUMNS)
    assert ann["token"] not in str(rows) and "secret" not in str(rows)

    mine = await _csv(shop, stream, silk["token"])
    assert [r["order_id"] for r in mine] == [first]
    assert [r["order_id"] for r in await _csv(shop, stream, canvas["token"])] == [refunded]
    await _csv(shop, stream, ann["token"], expect=403)
    await _csv(shop, stream, None, expect=401)
    await _csv(shop, {"id": "str_nope"}, host["token"], expect=404)


async def test_the_export_pages_through_a_long_show(shop: Api, monkeypatch: Any) -> None:
    """Read a page at a time (a small page here): every order once, in payment order."""
    monkeypatch.setattr(reports, "EXPORT_PAGE", 3)
    brand, host = await shop.account("brands", "Silk & Co"), await shop.account("hosts", "Lin")
    scarf = await shop.product(brand, price=100, stock=50)
    stream = await shop.stream(host, [scarf["id"]])
    buyers = [await shop.account("viewers", f"Buyer {i}") for i in range(8)]
    orders = [await paid(shop, b, stream, scarf, 1) for b in buyers]
    rows = await _csv(shop, stream, brand["token"])
    assert [r["order_id"] for r in rows] == orders
    assert [r["buyer"] for r in rows] == [f"Buyer {i}" for i in range(8)]


async def test_a_brand_sees_its_sales_across_its_shows(shop: Api) -> None:
    silk, canvas = await shop.account("brands", "Silk & Co"), await shop.account("brands", "Canvas Ltd")
    lin, mo = await shop.account("hosts", "Lin"), await shop.account("hosts", "Mo")
    scarf = await shop.product(silk, title="Silk scarf", price=2900)
    robe = await shop.product(silk, title="Silk robe", price=9900, currency="EUR")
    tote = await shop.product(canvas, title="Canvas tote", price=3900)
    morning = await shop.stream(lin, [scarf["id"], tote["id"]])
    evening = await shop.stream(mo, [scarf["id"], robe["id"]])
    ann = await shop.account("viewers", "Ann")
    await paid(shop, ann, morning, scarf, 1)
    await paid(shop, ann, morning, tote, 1)
    await paid(shop, ann, evening, scarf, 2)
    await paid(shop, ann, evening, robe, 1)
    refunded = await paid(shop, ann, evening, scarf, 1)
    await shop.call("POST", f"/api/orders/{refunded}/refund", ADMIN_TOKEN, expect=200)

    _, sales = await shop.call("GET", "/api/brands/me/sales", silk["token"], expect=200)
    assert sales["brand_id"] == silk["id"] and sales["to"] - sales["from"] == reports.DEFAULT_RANGE_S
    totals = {t["currency"]: (t["orders"], t["units"], t["gmv"]) for t in sales["totals"]}
    assert totals == {"USD": (2, 3, 3 * 2900), "EUR": (1, 1, 9900)}
    streams = {(s["stream_id"], s["currency"]): s["gmv"] for s in sales["streams"]}
    assert streams == {
        (morning["id"], "USD"): 2900,
        (evening["id"], "USD"): 5800,
        (evening["id"], "EUR"): 9900,
    }
    products = {p["title"]: p["units"] for p in sales["products"]}
    assert products == {"Silk scarf": 3, "Silk robe": 1}
    assert tote["id"] not in str(sales)

    # the range: ISO dates or Unix seconds; nothing sold before today
    now = time.time()
    _, before = await shop.call(
        "GET", "/api/brands/me/sales?from=2020-01-01&to=2020-02-01", silk["token"], expect=200
    )
    assert before["totals"] == [] and before["streams"] == [] and before["from"] == 1577836800.0
    _, since = await shop.call(
        "GET", f"/api/brands/me/sales?from={now - 3600:.0f}", silk["token"], expect=200
    )
    assert {t["currency"] for t in since["totals"]} == {"USD", "EUR"}


async def test_bad_ranges_and_other_callers_are_refused(shop: Api) -> None:
    brand, host = await shop.account("brands", "Silk & Co"), await shop.account("hosts", "Lin")
    viewer = await shop.account("viewers", "Vi")
    for query, field in (
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("from=2026-02-01&to=2026-01-01", "from"),
        ("from=2020-01-01&to=2026-01-01", "from"),
    ):
        _, refused = await shop.call("GET", f"/api/brands/me/sales?{query}", brand["token"], expect=422)
        assert refused["error"]["field"] == field, (query, refused)
    for token, status in ((host["token"], 403), (viewer["token"], 403), (None, 401)):
        await shop.call("GET", "/api/brands/me/sales", token, expect=status)
