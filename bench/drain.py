"""Drain rate: how fast queued deliveries reach a slow WooCommerce, against the ideal.

    python bench/drain.py [--deliveries 5000] [--latency 0.1] [--concurrency 4]

Queues confirmed payments for that many pending orders, then starts
`cryptum-bridge serve` against the simulated WooCommerce, which adds
`--latency` seconds to every request, and times until every delivery is
done. A payment costs three requests (GET, PUT, note), so the ideal rate is
concurrency / (3 x latency). Prints deliveries/s and the ratio to the ideal.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bridge.signature import json_canonical
from bridge.storage import NewEvent, SqliteStorage
from bridge_simulators.woocommerce import WooCommerceSimulator

STORE_ID = "drain-store-0001"
REQUESTS_PER_DELIVERY = 3


async def queue_payments(database_path: Path, order_ids: list[int]) -> None:
    database = await SqliteStorage.open(database_path)
    try:
        events = []
        for order_id in order_ids:
            body = json.dumps(
                {
                    "status": "confirmed",
                    "orderId": str(uuid.uuid4()),
                    "ecommerceOrderId": str(order_id),
                    "storeId": STORE_ID,
                    "transactions": [{"protocol": "POLYGON", "hash": "0x" + uuid.uuid4().hex}],
                }
            ).encode()
            events.append(
                NewEvent(
                    store="drain",
                    body_sha256=hashlib.sha256(json_canonical(body)).digest(),
                    source="callback",
                    signature_form="json",
                    request_id=None,
                    cryptum_order_id=str(order_id),
                    woo_order_id=str(order_id),
                    status="confirmed",
                    payload=body,
                )
            )
        await asyncio.gather(*(database.record_event(event) for event in events))
    finally:
        await database.close()


def pending(database_path: Path) -> int:
    with sqlite3.connect(database_path) as connection:
        (count,) = connection.execute(
            "SELECT count(*) FROM deliveries WHERE state = 'pending'"
        ).fetchone()
    return int(count)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=4)
    arguments = parser.parse_args()

    shop = WooCommerceSimulator()
    shop.add_key("ck_drain", "cs_drain")
    shop.add_product(10, "Drain Widget", stock=None)
    order_ids = list(range(100, 100 + arguments.deliveries))
    for order_id in order_ids:
        shop.add_order(order_id, items=[(10, 1)])
    await shop.start()
    shop.latency = arguments.latency

    with tempfile.TemporaryDirectory() as directory:
        database_path = Path(directory) / "drain.sqlite3"
        await queue_payments(database_path, order_ids)
        config = Path(directory) / "drain.toml"
        config.write_text(
            f"""
[server]
listen = "127.0.0.1:0"
[storage]
path = "{database_path}"
[logging]
format = "json"
level = "warning"
[delivery]
concurrency = {arguments.concurrency}
[[stores]]
name = "drain"
cryptum_store_id = "{STORE_ID}"
webhook_secret = "whsec_drain"
woocommerce.url = "{shop.base_url}"
woocommerce.consumer_key = "ck_drain"
woocommerce.consumer_secret = "cs_drain"
"""
        )
        print(f"machine: {platform.platform()}, {os.cpu_count()} cpus,", end=" ")
        print(f"Python {platform.python_version()}")
        print(
            f"{arguments.deliveries} queued payments, {arguments.latency * 1000:.0f} ms per "
            f"WooCommerce request, concurrency {arguments.concurrency}",
            flush=True,
        )
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
        )
        try:
            while pending(database_path):
                await asyncio.sleep(0.5)
            elapsed = time.perf_counter() - started
        finally:
            process.terminate()
            process.wait(timeout=30)
        await shop.close()

    paid = sum(1 for order_id in order_ids if shop.orders[order_id].status == "processing")
    rate = arguments.deliveries / elapsed
    ideal = arguments.concurrency / (REQUESTS_PER_DELIVERY * arguments.latency)
    print(f"orders paid: {paid}/{arguments.deliveries}")
    print(f"drained in {elapsed:.1f} s: {rate:.2f} deliveries/s, ideal {ideal:.2f}/s")
    print(f"ratio to ideal: {rate / ideal:.3f}")


if __name__ == "__main__":
    asyncio.run(main())
