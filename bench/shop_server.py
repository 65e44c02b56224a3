"""A simulated WooCommerce shop for benchmarks, in a process of its own.

    python bench/shop_server.py PORT ORDERS [LATENCY_SECONDS]

Serves orders 1000 .. 1000+ORDERS-1 (pending, Cryptum gateway) with the
given latency added to every request (default 0.1 s, close to a real shop).
"""

from __future__ import annotations

import asyncio
import sys

from bridge_simulators.woocommerce import WooCommerceSimulator

KEY, SECRET = "ck_bench", "cs_bench"
FIRST_ORDER = 1000


async def main(port: int, orders: int, latency: float) -> None:
    shop = WooCommerceSimulator(latency=latency)
    shop.add_key(KEY, SECRET)
    shop.add_product(10, "Bench Widget", stock=None)
    for order_id in range(FIRST_ORDER, FIRST_ORDER + orders):
        shop.add_order(order_id, items=[(10, 1)])
    await shop.start(port=port)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    latency = float(sys.argv[3]) if len(sys.argv) > 3 else 0.1
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), latency))
