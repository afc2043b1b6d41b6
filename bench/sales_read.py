"""Reading a stream's sales figures at 100 and at 100,000 paid orders: the kept figures (what
`OrderStore.stream_sales` reads since migration 7) beside a recount of the orders table (what
it read before), in one run, on SQLite and on PostgreSQL.

    .venv/bin/python bench/sales_read.py [--reads 30] [--sizes 100,100000]

Each size gets a fresh database (PostgreSQL: a schema of its own in the local `test` database)
with one stream of two products, paid orders spread over 60 minutes and 2,000 buyers, written
with the rush's batched INSERT, then counted into the figures by migration 7's own statements.
Every read is a whole `stream_sales` (products, buyers, timeline) in one read transaction;
medians of `--reads` reads after two warm-ups.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from checkout.orders_sql import _FIELDS, _row  # noqa: E402
from checkout.records import Order, OrderStatus  # noqa: E402
from core import ids  # noqa: E402
from core.db.migrations import split_statements  # noqa: E402
from core.identity import Role  # noqa: E402
from server.database import open_database  # noqa: E402
from tests.databases import PG_URL, Stores, make_stream  # noqa: E402

BACKFILL = [
    s
    for s in split_statements((ROOT / "checkout/schema/0007_sales_figures.sql").read_text())
    if s.startswith("INSERT")
]


async def recount(stores: Stores, stream_id: str) -> Any:
    """The figures as the store computed them before migration 7: from every paid order."""
    db = stores.db
    scope = "stream_id = $1 AND status = 'paid'"
    minute = db.dialect.floor.format("paid_at / 60") + " * 60"
    async with db.transaction(write=False) as conn:
        products = await conn.fetchall(
            "SELECT product_id, currency, COUNT(*) AS orders, SUM(quantity) AS units, SUM(amount) AS gmv"
            f" FROM orders WHERE {scope} GROUP BY product_id, currency ORDER BY product_id, currency",
            stream_id,
        )
        buyers = await conn.fetchone(
            f"SELECT COUNT(DISTINCT viewer_id) AS b FROM orders WHERE {scope}", stream_id
        )
        minutes = await conn.fetchall(
            f"SELECT {minute} AS t, currency, COUNT(*) AS orders, SUM(amount) AS gmv"
            f" FROM orders WHERE {scope} GROUP BY 1, currency ORDER BY 1, currency",
            stream_id,
        )
    return products, buyers, minutes


async def seed(stores: Stores, n: int) -> str:
    stream = await make_stream(stores, n_products=2)
    viewers = [
        (await stores.accounts.create_account(Role.VIEWER, f"v{i}", secrets.token_hex(16))).id
        for i in range(min(n, 2000))
    ]
    start = 1_800_000_000.0
    batch: list[Order] = []
    for i in range(n):
        paid = start + (i * 3600.0 / n)
        batch.append(
            Order(
                id=ids.new_id("ord"),
                viewer_id=viewers[i % len(viewers)],
                stream_id=stream.id,
                product_id=stream.product_ids[i % 2],
                sale_id=None,
                quantity=1 + i % 3,
                unit_price=990,
                amount=990 * (1 + i % 3),
                currency="USD",
                status=OrderStatus.PAID,
                idempotency_key=f"k{i}",
                request_hash=f"h{i}",
                provider="demo",
                intent_id=f"pi_{i}",
                client_secret=f"s_{i}",
                created_at=paid - 5,
                updated_at=paid,
                expires_at=paid + 600,
                paid_at=paid,
            )
        )
        if len(batch) == 1000 or i == n - 1:
            await stores.db.insert_many("orders", _FIELDS, [_row(o) for o in batch], "")
            batch = []
    async with stores.db.transaction(write=True) as conn:
        await conn.execute("DELETE FROM sales_figures")
        await conn.execute("DELETE FROM sales_buyers")
        await conn.execute("DELETE FROM sales_buyer_counts")
        for statement in BACKFILL:
            await conn.execute(statement)
    return stream.id


async def timed(read: Any, reads: int) -> float:
    for _ in range(2):
        await read()
    times = []
    for _ in range(reads):
        t0 = time.perf_counter()
        await read()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


async def measure(url: str, n: int, reads: int) -> dict[str, float]:
    db = await open_database(url)
    try:
        stores = Stores.on(db)
        stream_id = await seed(stores, n)
        kept = await stores.orders.stream_sales(stream_id)
        assert kept.orders == n, (kept.orders, n)
        return {
            "kept_ms": round(await timed(lambda: stores.orders.stream_sales(stream_id), reads), 3),
            "recount_ms": round(await timed(lambda: recount(stores, stream_id), reads), 3),
        }
    finally:
        await db.close()


async def main(sizes: list[int], reads: int) -> None:
    results: dict[str, dict[int, dict[str, float]]] = {"sqlite": {}, "postgresql": {}}
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            results["sqlite"][n] = await measure(f"sqlite:///{tmp}/bench.db", n, reads)
        schema = "bench_" + secrets.token_hex(4)
        admin = await asyncpg.connect(PG_URL)
        try:
            await admin.execute(f"CREATE SCHEMA {schema}")
            sep = "&" if "?" in PG_URL else "?"
            results["postgresql"][n] = await measure(f"{PG_URL}{sep}search_path={schema}", n, reads)
        finally:
            await admin.execute(f"DROP SCHEMA {schema} CASCADE")
            await admin.close()
    small, large = min(sizes), max(sizes)
    for name, by_size in results.items():
        by_size_out = {str(k): v for k, v in by_size.items()}
        ratio = {
            "kept_large_over_small": round(by_size[large]["kept_ms"] / by_size[small]["kept_ms"], 2),
            "recount_large_over_small": round(by_size[large]["recount_ms"] / by_size[small]["recount_ms"], 2),
        }
        print(json.dumps({"database": name, "reads": reads, **by_size_out, **ratio}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, default=30)
    parser.add_argument("--sizes", default="100,100000")
    args = parser.parse_args()
    asyncio.run(main([int(s) for s in args.sizes.split(",")], args.reads))
