"""/metrics after a known sequence of events, on a real server with the simulated shop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.app import create_app
from bridge.app_keys import STORAGE
from bridge.config import parse_config
from bridge_simulators.woocommerce import WooCommerceSimulator

from support import SECOND_SECRET, SECOND_STORE_ID, callback_body, config_document, signed_headers


@pytest.fixture
async def shop() -> AsyncIterator[WooCommerceSimulator]:
    async with WooCommerceSimulator() as simulator:
        simulator.add_key("ck_metrics", "cs_metrics")
        simulator.seed_fixture_shop()
        yield simulator


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_metrics_count_what_happened(
    aiohttp_client: Any, tmp_path: Path, shop: WooCommerceSimulator
) -> None:
    document = config_document(tmp_path / "bridge.sqlite3")
    document["delivery"] = {"backoff_initial_seconds": 30, "backoff_max_seconds": 60}
    document["stores"][0]["woocommerce"] = {
        "url": shop.base_url,
        "consumer_key": "ck_metrics",
        "consumer_secret": "cs_metrics",
    }
    client = await aiohttp_client(create_app(parse_config(document, base_dir=tmp_path)))

    paid = callback_body(woo_order_id="11")
    missing = callback_body(woo_order_id="999999")
    for body in (paid, paid, missing):
        assert (
            await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
        ).status == 200
    assert (await client.post("/callbacks/cryptum", data=paid)).status == 401
    assert (await client.post("/callbacks/cryptum", data=b"nope")).status == 400
    # The second store's shop (127.0.0.1:9) refuses connections: a retry.
    second = callback_body(store_id=SECOND_STORE_ID, woo_order_id="12")
    await client.post(
        "/callbacks/cryptum", data=second, headers=signed_headers(second, SECOND_SECRET)
    )

    async def settled() -> bool:
        rows = await client.app[STORAGE].list_deliveries()
        seen = sorted((row.store, row.state, row.last_error is not None) for row in rows)
        return seen == [
            ("main", "dead", False),
            ("main", "done", False),
            ("second", "pending", True),
        ]

    for _ in range(200):
        if await settled():
            break
        await asyncio.sleep(0.05)
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    found = samples(await response.text())

    def callbacks(store: str, outcome: str) -> float:
        return found.get(
            ("cryptum_bridge_callbacks_total", (("outcome", outcome), ("store", store))), 0
        )

    assert callbacks("main", "accepted") == 2
    assert callbacks("main", "duplicate") == 1
    assert callbacks("main", "invalid_signature") == 1
    assert callbacks("-", "invalid_payload") == 1
    assert callbacks("second", "accepted") == 1

    def deliveries(store: str, outcome: str) -> float:
        return found.get(
            ("cryptum_bridge_deliveries_total", (("outcome", outcome), ("store", store))), 0
        )

    assert deliveries("main", "done") == 1
    assert deliveries("main", "dead") == 1
    assert deliveries("second", "retry") >= 1
    assert (
        found[
            (
                "cryptum_bridge_upstream_errors_total",
                (("kind", "order_not_found"), ("service", "woocommerce")),
            )
        ]
        == 1
    )
    assert found[("cryptum_bridge_outbox_depth", ())] == 1  # the second store's, waiting to retry
    assert found[("cryptum_bridge_dead_letters", ())] == 1
    assert found[("cryptum_bridge_oldest_pending_age_seconds", ())] >= 0
    assert found[("cryptum_bridge_delivery_attempt_seconds_count", (("store", "main"),))] == 2
    build = [key for key in found if key[0] == "cryptum_bridge_build_info"]
    assert build and dict(build[0][1])["version"]
