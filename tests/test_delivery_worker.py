"""The delivery worker's dead ends, driven in this process on a virtual clock.

The real app (`create_app`, background loops off), the simulated Cryptum and
the simulated shop on 127.0.0.1, as in `payment_world`: the test calls
`run_due` and moves the clock, so days of backoff pass with nothing asleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from bridge import delivery_stages as delivery_module
from bridge import http_call
from bridge.app_keys import METRICS, STORAGE
from bridge.config import parse_config
from bridge.reload import apply_config
from bridge.signature import sign
from bridge_simulators.woocommerce import WooCommerceSimulator

from payment_world import LOOKBACK_HOURS, Callback, World
from support import CONFIGURED_SECRETS, MAIN_SECRET, MAIN_STORE_ID, SECOND_SECRET, SECOND_STORE_ID

TX = "0x5eed"


class ShortLivedWorld(World):
    """A world whose bridge gives up on a delivery after one hour."""

    def config_document(self) -> dict[str, Any]:
        document = super().config_document()
        document["delivery"]["max_age_hours"] = 1
        return document


@pytest.fixture
async def short_lived(tmp_path: Path) -> AsyncIterator[World]:
    started = ShortLivedWorld(tmp_path)
    await started.start()
    yield started
    await started.close()


def the_delivery(world: World) -> dict[str, Any]:
    (delivery,) = world.rows("SELECT * FROM deliveries")
    return delivery


async def test_a_cryptum_order_for_another_woocommerce_order_is_dead_lettered(
    world: World, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    world.checkout(11)  # same total as order 12: only the order id tells them apart
    theirs = world.checkout(12)
    world.cryptum.set_status(theirs, "confirmed", transactions=[("POLYGON", TX)])
    # Correctly signed, for our store, but it names order 11 for the payment of order 12.
    body = json.dumps(
        {
            "message": "Payment was successful",
            "status": "confirmed",
            "orderId": theirs,
            "ecommerceOrderId": "11",
            "storeId": MAIN_STORE_ID,
            "transactions": [{"protocol": "POLYGON", "hash": TX}],
        }
    ).encode()
    assert await world.post(Callback(body, sign(body, MAIN_SECRET))) == 200

    assert await world.worker.run_due() == 1
    delivery = the_delivery(world)
    assert (delivery["state"], delivery["attempts"]) == ("dead", 1)
    assert delivery["outcome"] == "the Cryptum order is for WooCommerce order 12"
    # Nothing applied, nor even read: the API was asked before the shop.
    assert world.shop.requests == []
    assert [world.shop.orders[n].status for n in (11, 12)] == ["pending", "pending"]
    assert world.rows("SELECT * FROM applied_payments") == []
    (alert,) = [line for line in logs() if line["event"] == "security.callback_not_confirmed"]
    assert alert["reason"] == delivery["outcome"]


async def test_a_delivery_failing_past_max_age_hours_is_dead_lettered(
    short_lived: World,
) -> None:
    world = short_lived
    cryptum_id = world.checkout(11)
    world.cryptum.set_status(cryptum_id, "confirmed", transactions=[("POLYGON", TX)])
    received = world.clock.now
    assert await world.post(world.callback(cryptum_id, "confirmed", tx=TX)) == 200
    world.shop.fail_next(10_000, status=503)  # down for longer than the bridge waits

    # Each attempt when it is due, for three times the hour the bridge allows.
    while world.clock.now < received + 3 * 3600:
        await world.worker.run_due()
        delivery = the_delivery(world)
        if delivery["state"] != "pending":
            break
        world.clock.now = delivery["next_attempt_at"]

    assert delivery["state"] == "dead"
    assert delivery["outcome"] == "gave up after 1 h: WooCommerce answered 503"
    assert delivery["attempts"] > 5  # retried with backoff until then
    # It gave up at the attempt whose retry would have fallen past the hour, not later.
    assert received < delivery["updated_at"] <= received + 3600
    assert world.shop.orders[11].status == "pending"
    assert world.bridge_notes(11) == []
    assert world.rows("SELECT * FROM applied_payments") == []


# Every outcome of a delivery, and every path to a retry --------------------------


class SteadyWorld(World):
    """A world whose jitter is always 1: each retry waits the whole backoff window."""

    def _jitter(self) -> float:
        return 1.0


@pytest.fixture
async def steady(tmp_path: Path) -> AsyncIterator[World]:
    started = SteadyWorld(tmp_path)
    await started.start()
    yield started
    await started.close()


def metric(world: World, name: str, **labels: str) -> float:
    value = world.app[METRICS].registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def deliveries_counted(world: World, outcome: str) -> float:
    return metric(world, "cryptum_bridge_deliveries_total", store="main", outcome=outcome)


def upstream_errors(world: World, service: str, kind: str) -> float:
    return metric(world, "cryptum_bridge_upstream_errors_total", service=service, kind=kind)


def assert_names_the_delivery(
    line: dict[str, Any], delivery: dict[str, Any], cryptum_id: str
) -> None:
    """A worker's log line names the store, the delivery, its event and both orders."""
    names = {
        "store": delivery["store"],
        "delivery_id": delivery["id"],
        "event_id": delivery["event_id"],
        "woo_order_id": delivery["woo_order_id"],
        "cryptum_order_id": cryptum_id,
    }
    assert {key: line.get(key) for key in names} == names


async def paid_callback(world: World, woo_order_id: int = 11) -> str:
    """An order, its payment confirmed by the API, and the callback accepted; the Cryptum id."""
    cryptum_id = world.checkout(woo_order_id)
    world.cryptum.set_status(cryptum_id, "confirmed", transactions=[("POLYGON", TX)])
    assert await world.post(world.callback(cryptum_id, "confirmed", tx=TX)) == 200
    return cryptum_id


def shop_calls(world: World) -> list[tuple[str, str]]:
    """The shop's requests, by method and what they were for."""
    calls = []
    for request in world.shop.requests:
        what = "notes" if request.path.endswith("/notes") else "order"
        calls.append((request.method, what))
    return calls


async def test_a_confirmed_payment_is_applied_in_three_requests_and_recorded(
    world: World, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    cryptum_id = await paid_callback(world)

    started = time.perf_counter()
    assert await world.worker.run_due() == 1
    took = time.perf_counter() - started
    assert shop_calls(world) == [("GET", "order"), ("PUT", "order"), ("POST", "notes")]
    assert [r.path for r in world.cryptum.api_requests] == [f"/plugins/orders/{cryptum_id}"]
    delivery = the_delivery(world)
    assert (delivery["state"], delivery["attempts"], delivery["applied_status"]) == (
        "done",
        1,
        "confirmed",
    )
    assert delivery["outcome"].startswith("pay: ")
    assert delivery["progress"] == "acting"  # the plan was saved before the PUT
    assert json.loads(delivery["decision"])["note"] in world.bridge_notes(11)
    order = world.shop.orders[11]
    assert (order.status, order.transaction_id) == ("processing", TX)
    assert len(world.bridge_notes(11)) == 1
    assert deliveries_counted(world, "done") == 1
    assert metric(world, "cryptum_bridge_delivery_attempt_seconds_count", store="main") == 1
    # The attempt's own duration, within the time run_due took.
    assert 0 < metric(world, "cryptum_bridge_delivery_attempt_seconds_sum", store="main") <= took
    (applied,) = [line for line in logs() if line["event"] == "delivery.applied"]
    assert (applied["action"], applied["target_status"], applied["attempts"]) == (
        "pay",
        "processing",
        1,
    )
    assert applied["reason"] == delivery["outcome"].removeprefix("pay: ")
    assert_names_the_delivery(applied, delivery, cryptum_id)
    assert "delivery.api_disagrees" not in [line["event"] for line in logs()]


async def test_an_order_paid_already_is_skipped_and_the_status_still_counts_as_applied(
    world: World, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    await paid_callback(world)
    world.shop.orders[11].status = "completed"

    assert await world.worker.run_due() == 1
    assert shop_calls(world) == [("GET", "order")]
    delivery = the_delivery(world)
    assert (delivery["state"], delivery["applied_status"]) == ("skipped", "confirmed")
    assert delivery["outcome"].startswith("nothing: ")
    assert delivery["progress"] == "new"  # nothing to do: no plan saved
    assert deliveries_counted(world, "skipped") == 1
    (skipped,) = [line for line in logs() if line["event"] == "delivery.skipped"]
    assert skipped["order_status"] == "completed"
    assert skipped["reason"] == delivery["outcome"].removeprefix("nothing: ")
    assert world.rows("SELECT status FROM applied_payments") == [{"status": "confirmed"}]


async def test_a_total_other_than_cryptums_puts_the_order_on_hold(world: World) -> None:
    await paid_callback(world)
    world.shop.orders[11].total = "99.00"  # the API says 12.50

    await world.worker.run_due()
    assert world.shop.orders[11].status == "on-hold"
    assert world.shop.orders[11].transaction_id == ""
    (note,) = world.bridge_notes(11)
    assert "12.50" in note and "99.00" in note


async def test_a_payment_for_an_order_of_another_payment_method_holds_it_for_review(
    world: World,
) -> None:
    cryptum_id = world.checkout(11)
    world.shop.orders[11].payment_method = "bacs"
    world.cryptum.set_status(cryptum_id, "confirmed", transactions=[("POLYGON", TX)])
    assert await world.post(world.callback(cryptum_id, "confirmed", tx=TX)) == 200

    await world.worker.run_due()
    delivery = the_delivery(world)
    assert (delivery["state"], delivery["attempts"]) == ("dead", 1)
    assert "bacs" in delivery["outcome"]
    # Money arrived for an order paid some other way: held, never marked paid.
    order = world.shop.orders[11]
    assert (order.status, order.transaction_id) == ("on-hold", "")
    (note,) = world.bridge_notes(11)
    assert "bacs" in note
    assert deliveries_counted(world, "dead") == 1
    assert world.rows("SELECT * FROM applied_payments") == []


async def test_an_order_missing_from_the_shop_is_dead_lettered_at_once(
    world: World, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    await paid_callback(world)
    del world.shop.orders[11]

    await world.worker.run_due()
    delivery = the_delivery(world)
    assert (delivery["state"], delivery["attempts"]) == ("dead", 1)
    assert delivery["outcome"] == "order not found in WooCommerce"
    dead = [line for line in logs() if line["event"] == "delivery.dead"]
    assert [(line["reason"], line["attempts"]) for line in dead] == [
        ("order not found in WooCommerce", 1)
    ]


async def test_a_request_the_shop_rejects_is_dead_lettered_at_once(world: World) -> None:
    await paid_callback(world)
    world.shop.fail_next(1, status=400, method="PUT")

    await world.worker.run_due()
    delivery = the_delivery(world)
    assert (delivery["state"], delivery["attempts"]) == ("dead", 1)
    assert delivery["outcome"].startswith("WooCommerce rejected the request")
    assert world.shop.orders[11].status == "pending"


def inject_failure(world: World, kind: str) -> None:
    shop = world.shop
    if kind == "503":
        shop.fail_next(1, status=503, method="PUT")
    elif kind == "html 502":
        shop.fail_next(1, status=502, method="PUT", body="html")
    elif kind == "timeout":
        shop.time_out_next(1, seconds=5, method="PUT")
    elif kind == "lost answer":
        shop.drop_response_next(2, method="PUT")  # aiohttp's resend is lost too
    elif kind == "nonce replay":
        # aiohttp resends the PUT whose answer was lost, nonce and all; the
        # shop refuses the copy for its used nonce, as WooCommerce does.
        shop.drop_response_next(1, method="PUT")
    elif kind == "lost note answer":
        shop.drop_response_next(1, method="POST")
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("503", "WooCommerce answered 503"),
        ("html 502", "WooCommerce answered 502"),
        ("timeout", "no answer from WooCommerce within 0.5 s"),
        ("lost answer", "WooCommerce unreachable: ServerDisconnectedError"),
        ("nonce replay", "a resent request reached WooCommerce twice"),
        ("lost note answer", "WooCommerce unreachable: ServerDisconnectedError"),
    ],
)
async def test_a_failed_request_is_retried_and_the_change_lands_once(
    steady: World, kind: str, error: str, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    world = steady
    await paid_callback(world)
    inject_failure(world, kind)
    now = world.clock.now

    assert await world.worker.run_due() == 1
    delivery = the_delivery(world)
    assert (delivery["state"], delivery["attempts"]) == ("pending", 1)
    assert delivery["last_error"] == error
    # The first retry waits the first backoff window (jitter 1: all of it).
    assert delivery["next_attempt_at"] == pytest.approx(now + 5)
    assert deliveries_counted(world, "retry") == 1
    (retry,) = [line for line in logs() if line["event"] == "delivery.retry"]
    assert (retry["reason"], retry["attempts"]) == (delivery["last_error"], 1)
    assert retry["delay_seconds"] == 5

    assert await world.worker.run_due() == 0  # not due yet
    world.clock.now = delivery["next_attempt_at"]
    first_attempt = len(world.shop.requests)
    assert await world.worker.run_due() == 1
    delivery = the_delivery(world)
    assert (delivery["state"], delivery["attempts"]) == ("done", 2)
    order = world.shop.orders[11]
    assert (order.status, order.transaction_id) == ("processing", TX)
    assert len(world.bridge_notes(11)) == 1
    assert order.stock_reduced
    # A PUT that reached the shop is never sent again: the retry finds its change.
    retried = [r.method for r in world.shop.requests[first_attempt:]]
    reached_the_shop = kind in ("lost answer", "nonce replay", "lost note answer")
    assert ("PUT" in retried) is not reached_the_shop


async def test_retries_back_off_exponentially_up_to_the_maximum(steady: World) -> None:
    world = steady
    await paid_callback(world)
    world.shop.fail_next(10, status=503, method="GET")

    waits = []
    for _ in range(9):
        before = world.clock.now
        await world.worker.run_due()
        delivery = the_delivery(world)
        waits.append(delivery["next_attempt_at"] - before)
        world.clock.now = delivery["next_attempt_at"]
    # From backoff_initial_seconds (5), doubling, capped at backoff_max_seconds (600).
    assert waits == pytest.approx([5, 10, 20, 40, 80, 160, 320, 600, 600])
    assert the_delivery(world)["attempts"] == 9


async def test_a_429_waits_at_least_its_retry_after(steady: World) -> None:
    world = steady
    await paid_callback(world)
    world.shop.fail_next(1, status=429, retry_after=120, method="PUT")
    now = world.clock.now

    await world.worker.run_due()
    assert the_delivery(world)["next_attempt_at"] == pytest.approx(now + 120)


async def test_a_retry_after_past_the_maximum_backoff_is_capped_not_dead_lettered(
    steady: World, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    world = steady
    await paid_callback(world)
    world.shop.fail_next(1, status=429, retry_after=4 * 86400, method="PUT")
    now = world.clock.now

    await world.worker.run_due()
    delivery = the_delivery(world)
    assert delivery["state"] == "pending"
    assert delivery["next_attempt_at"] == pytest.approx(now + 600)
    (capped,) = [line for line in logs() if line["event"] == "delivery.retry_after_capped"]
    assert (capped["retry_after_seconds"], capped["capped_seconds"]) == (4 * 86400, 600)


async def test_refused_credentials_are_a_config_problem_retried_at_the_slowest_pace(
    world: World, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    await paid_callback(world)
    world.shop.fail_next(1, status=401, method="GET")
    now = world.clock.now

    await world.worker.run_due()
    delivery = the_delivery(world)
    assert (delivery["state"], delivery["next_attempt_at"]) == ("pending", now + 600)
    (problem,) = world.worker.problems()
    assert problem.startswith("store main: ")
    assert deliveries_counted(world, "config_error") == 1
    assert deliveries_counted(world, "retry") == 0
    (error,) = [line for line in logs() if line["event"] == "delivery.config_error"]
    assert (error["reason"], error["status"]) == (delivery["last_error"], 401)
    assert upstream_errors(world, "woocommerce", "config") == 1

    # Credentials fixed: the next attempt lands and the problem is gone.
    world.clock.now = delivery["next_attempt_at"]
    await world.worker.run_due()
    assert the_delivery(world)["state"] == "done"
    assert world.worker.problems() == []


async def test_a_crash_after_the_plan_was_saved_resumes_that_plan(world: World) -> None:
    await paid_callback(world)
    world.shop.time_out_next(1, method="PUT")  # held unanswered, never applied
    # Stopped once it read the order and saved its plan, while the PUT hangs.
    work = asyncio.create_task(world.worker.run_due())
    while world.shop.faults_pending:  # the PUT is held: the plan was saved before it
        await asyncio.sleep(0.01)
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await work
    await world.restart()
    delivery = the_delivery(world)
    assert (delivery["state"], delivery["progress"]) == ("pending", "acting")
    assert world.shop.orders[11].status == "pending"
    plan = json.loads(delivery["decision"])

    await world.worker.run_due()
    delivery = the_delivery(world)
    assert delivery["state"] == "done", delivery
    assert world.shop.orders[11].status == "processing"
    assert world.bridge_notes(11) == [plan["note"]]


async def test_a_crash_after_the_change_posts_the_missing_note_only(world: World) -> None:
    await paid_callback(world)
    await world.crash_during_deliveries(after_requests=2)  # the GET and the PUT
    assert world.shop.orders[11].status == "processing"
    assert world.bridge_notes(11) == []
    requests_before = len(world.shop.requests)

    await world.worker.run_due()
    assert the_delivery(world)["state"] == "done"
    assert len(world.bridge_notes(11)) == 1
    # Re-read the order, looked for the note, posted it: no second PUT.
    assert [r.method for r in world.shop.requests[requests_before:]] == ["GET", "GET", "POST"]


async def test_an_unexpected_error_is_logged_and_the_delivery_kept_for_a_retry(
    world: World, logs: Callable[[], list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    await paid_callback(world)
    real_plan = delivery_module.plan_delivery

    def broken_once(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(delivery_module, "plan_delivery", real_plan)
        raise RuntimeError("a bug")

    monkeypatch.setattr(delivery_module, "plan_delivery", broken_once)
    await world.worker.run_due()
    delivery = the_delivery(world)
    assert (delivery["state"], delivery["last_error"]) == ("pending", "internal error, see logs")
    assert [line["event"] for line in logs()].count("delivery.crashed") == 1

    world.clock.now = delivery["next_attempt_at"]
    await world.worker.run_due()
    assert the_delivery(world)["state"] == "done"
    assert world.shop.orders[11].status == "processing"


async def test_a_payment_applied_by_another_delivery_is_skipped_without_asking_cryptum(
    world: World, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    cryptum_id = await paid_callback(world)
    await world.worker.run_due()
    first = the_delivery(world)
    api_requests = len(world.cryptum.api_requests)
    # The same payment again in other words: a new event, a delivery of its own.
    again = world.callback(cryptum_id, "confirmed", tx=TX, message="Payment was successful!")
    assert await world.post(again) == 200

    await world.worker.run_due()
    second = world.rows("SELECT * FROM deliveries WHERE id != " + str(first["id"]))[0]
    assert second["state"] == "skipped"
    assert second["outcome"] == f"confirmed already applied by delivery {first['id']}"
    assert len(world.cryptum.api_requests) == api_requests
    assert len(world.bridge_notes(11)) == 1
    assert deliveries_counted(world, "skipped") == 1


async def test_a_callback_the_api_disagrees_with_is_rechecked_then_the_api_wins(
    world: World, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    cryptum_id = world.checkout(11)
    world.cryptum.set_status(cryptum_id, "confirmed", transactions=[("POLYGON", TX)])
    callback = world.callback(cryptum_id, "confirmed", tx=TX)
    world.cryptum.set_status(cryptum_id, "failed")
    assert await world.post(callback) == 200
    received = world.clock.now

    await world.worker.run_due()
    delivery = the_delivery(world)
    assert delivery["state"] == "pending"
    assert delivery["last_error"] == (
        "the Cryptum API says 'failed' where the callback says 'confirmed'; checking again"
    )
    while the_delivery(world)["state"] == "pending":
        world.clock.now = the_delivery(world)["next_attempt_at"]
        await world.worker.run_due()
    delivery = the_delivery(world)
    assert (delivery["state"], delivery["applied_status"]) == ("done", "failed")
    assert world.clock.now >= received + 300  # confirm_recheck_seconds
    assert world.shop.orders[11].status == "failed"
    (disagrees,) = [line for line in logs() if line["event"] == "delivery.api_disagrees"]
    assert (disagrees["callback_status"], disagrees["api_status"]) == ("confirmed", "failed")


async def test_a_callback_ahead_of_the_api_waits_for_it_no_longer_than_reconciliation(
    steady: World, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    world = steady
    cryptum_id = world.checkout(11)
    # Signed by Cryptum, but its API still says pending.
    assert await world.post(world.callback(cryptum_id, "confirmed", tx=TX)) == 200
    received = world.clock.now

    waits, errors = [], set()
    while the_delivery(world)["state"] == "pending":
        before = world.clock.now
        await world.worker.run_due()
        delivery = the_delivery(world)
        if delivery["state"] == "pending":
            waits.append(delivery["next_attempt_at"] - before)
            errors.add(delivery["last_error"])
            world.clock.now = delivery["next_attempt_at"]
    # Backoff from 5 s, never longer than reconcile.interval_seconds (300).
    assert waits[:8] == pytest.approx([5, 10, 20, 40, 80, 160, 300, 300])
    assert max(waits) <= 300
    delivery = the_delivery(world)
    assert delivery["state"] == "dead"
    # The last look is at the end of the lookback, not after it.
    assert world.clock.now - received == pytest.approx(LOOKBACK_HOURS * 3600)
    waiting = "the Cryptum API says 'pending' where the callback says 'confirmed'"
    assert errors == {f"{waiting}; waiting for the API to catch up"}
    assert delivery["outcome"] == (
        "the Cryptum API says 'pending' where the callback says 'confirmed' "
        "2 h after it arrived: nothing applied"
    )
    assert world.shop.orders[11].status == "pending"
    assert deliveries_counted(world, "retry") == len(waits)
    awaiting = [line for line in logs() if line["event"] == "delivery.awaiting_cryptum"]
    assert [line["delay_seconds"] for line in awaiting][:2] == [5, 10]
    assert {line["reason"] for line in awaiting} == errors


async def test_a_cryptum_order_unknown_to_the_api_is_dead_lettered_as_a_security_event(
    world: World, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    world.checkout(11)
    body = json.dumps(
        {
            "message": "Payment was successful",
            "status": "confirmed",
            "orderId": "no-such-order",
            "ecommerceOrderId": "11",
            "storeId": MAIN_STORE_ID,
            "transactions": [{"protocol": "POLYGON", "hash": TX}],
        }
    ).encode()
    assert await world.post(Callback(body, sign(body, MAIN_SECRET))) == 200

    await world.worker.run_due()
    delivery = the_delivery(world)
    assert (delivery["state"], delivery["outcome"]) == (
        "dead",
        "Cryptum does not know order no-such-order",
    )
    assert world.shop.requests == []
    (alert,) = [line for line in logs() if line["event"] == "security.callback_not_confirmed"]
    assert alert["reason"] == delivery["outcome"]


async def test_a_delivery_acts_on_the_facts_taken_on_arrival_not_the_stored_body(
    world: World,
) -> None:
    cryptum_id = await paid_callback(world)
    # Whatever becomes of the stored body, no attempt parses it again.
    with sqlite3.connect(world.directory / "bridge.sqlite3") as connection:
        connection.execute("UPDATE events SET payload = x'00'")

    await world.worker.run_due()
    order = world.shop.orders[11]
    assert (order.status, order.transaction_id) == ("processing", TX)
    assert world.meta(11)["_cryptum_checkout_order_transactions_message"] == (
        "Payment was successful"
    )
    assert json.loads(world.meta(11)["_cryptum_checkout_order_transactions"]) == [
        {"protocol": "POLYGON", "hash": TX}
    ]
    assert world.meta(11)["_cryptum_order_id"] == cryptum_id


async def test_a_status_the_api_reports_that_another_delivery_applied_is_skipped(
    world: World,
) -> None:
    cryptum_id = await paid_callback(world)
    await world.worker.run_due()
    first = the_delivery(world)
    # A late "pending" callback: the API, ahead of it, says confirmed, applied already.
    assert await world.post(world.callback(cryptum_id, "pending")) == 200

    await world.worker.run_due()
    late = world.rows(f"SELECT * FROM deliveries WHERE id != {first['id']}")[0]
    assert (late["state"], late["outcome"]) == (
        "skipped",
        f"confirmed already applied by delivery {first['id']}",
    )
    assert len(world.bridge_notes(11)) == 1


async def test_a_payment_for_a_refunded_order_is_only_noted(world: World) -> None:
    await paid_callback(world)
    world.shop.orders[11].status = "refunded"

    await world.worker.run_due()
    delivery = the_delivery(world)
    assert (delivery["state"], delivery["outcome"].split(":")[0]) == ("done", "note_only")
    assert world.shop.orders[11].status == "refunded"
    assert len(world.bridge_notes(11)) == 1
    assert [r.method for r in world.shop.requests] == ["GET", "POST"]


class CancellingWorld(World):
    """A store whose rules cancel an order whose payment failed."""

    def config_document(self) -> dict[str, Any]:
        document = super().config_document()
        document["stores"][0]["rules"] = {"failed": "cancelled"}
        return document


async def test_the_stores_own_rules_decide(tmp_path: Path) -> None:
    world = CancellingWorld(tmp_path)
    await world.start()
    try:
        cryptum_id = world.checkout(11)
        world.cryptum.set_status(cryptum_id, "failed")
        assert await world.post(world.callback(cryptum_id, "failed")) == 200
        await world.worker.run_due()
        assert world.shop.orders[11].status == "cancelled"
    finally:
        await world.close()


async def test_an_event_stored_before_facts_were_kept_is_read_from_its_body(
    world: World,
) -> None:
    await paid_callback(world)
    with sqlite3.connect(world.directory / "bridge.sqlite3") as connection:
        connection.execute("UPDATE events SET facts = NULL")

    await world.worker.run_due()
    assert world.shop.orders[11].status == "processing"
    assert world.meta(11)["_cryptum_checkout_order_transactions_message"] == (
        "Payment was successful"
    )
    assert json.loads(world.meta(11)["_cryptum_checkout_order_transactions"]) == [
        {"protocol": "POLYGON", "hash": TX}
    ]


async def test_an_older_event_whose_body_no_longer_parses_keeps_its_indexed_facts(
    world: World,
) -> None:
    await paid_callback(world)
    with sqlite3.connect(world.directory / "bridge.sqlite3") as connection:
        connection.execute("UPDATE events SET facts = NULL, payload = x'7b7d'")  # {}

    await world.worker.run_due()
    order = world.shop.orders[11]
    # Paid all the same: the API's order carries the transaction.
    assert (order.status, order.transaction_id) == ("processing", TX)
    assert "_cryptum_checkout_order_transactions_message" not in world.meta(11)


# What each outcome writes: the log line's fields and the metrics ----------------


async def test_a_retry_is_logged_with_its_reason_status_attempts_and_delay(
    steady: World, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    world = steady
    cryptum_id = await paid_callback(world)
    world.shop.fail_next(1, status=503, method="GET")

    await world.worker.run_due()
    delivery = the_delivery(world)
    (retry,) = [line for line in logs() if line["event"] == "delivery.retry"]
    assert {key: retry[key] for key in ("reason", "status", "attempts", "delay_seconds")} == {
        "reason": "WooCommerce answered 503",
        "status": 503,
        "attempts": 1,
        "delay_seconds": 5,
    }
    assert upstream_errors(world, "woocommerce", "transient") == 1

    world.clock.now = delivery["next_attempt_at"]
    await world.worker.run_due()
    delivery = the_delivery(world)
    assert delivery["state"] == "done"
    # Every line of either attempt names the delivery it is about.
    lines = [line for line in logs() if line["event"].startswith("delivery.")]
    assert [line["event"] for line in lines] == ["delivery.retry", "delivery.applied"]
    for line in lines:
        assert_names_the_delivery(line, delivery, cryptum_id)


class FractionalWorld(SteadyWorld):
    """A world whose longest backoff is not a whole number of seconds."""

    def config_document(self) -> dict[str, Any]:
        document = super().config_document()
        document["delivery"]["backoff_max_seconds"] = 600.1234
        return document


async def test_the_waits_of_a_capped_retry_after_are_logged_to_the_millisecond(
    tmp_path: Path, logs: Callable[[], list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    world = FractionalWorld(tmp_path)
    await world.start()
    try:
        await paid_callback(world)
        # A Retry-After date (the simulator sends the header as given) four
        # days and a fraction of a second away; the bridge reads a date
        # against the wall clock, held still here.
        asked = "Wed, 21 Oct 2026 07:28:00 GMT"
        wall = parsedate_to_datetime(asked).timestamp() - (4 * 86400 + 0.12345)
        monkeypatch.setattr(http_call, "time", SimpleNamespace(time=lambda: wall))
        world.shop.fail_next(1, status=429, retry_after=asked, method="PUT")

        await world.worker.run_due()
        lines = {line["event"]: line for line in logs()}
        capped = lines["delivery.retry_after_capped"]
        assert (capped["retry_after_seconds"], capped["capped_seconds"]) == (345600.123, 600.123)
        assert lines["delivery.retry"]["delay_seconds"] == 600.123
    finally:
        await world.close()


# The lease, stopping, the loop ----------------------------------------------------


async def eventually(condition: Callable[[], bool], *, seconds: float = 5.0) -> None:
    """Wait until `condition` holds, looking every 10 ms; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.01)


async def running_until_the_put(world: World) -> asyncio.Task[int]:
    """`run_due` in a task, once the delivery it runs waits on a PUT the shop holds."""
    world.shop.time_out_next(1, method="PUT")  # held unanswered, never applied
    work = asyncio.create_task(world.worker.run_due())
    await eventually(lambda: not world.shop.faults_pending)
    return work


async def stop_during_the_put(world: World, *, timeout: float) -> None:
    """Run the due delivery, and stop the worker while the shop holds its PUT."""
    work = await running_until_the_put(world)
    await world.worker.stop(timeout=timeout)
    with contextlib.suppress(asyncio.CancelledError):
        await work


async def test_stop_lets_a_running_delivery_finish_within_its_timeout(world: World) -> None:
    await paid_callback(world)
    world.shop.latency_by_method = {"PUT": 0.1}
    work = asyncio.create_task(world.worker.run_due())
    await eventually(lambda: bool(world.shop.requests))  # the order read, the PUT under way

    await world.worker.stop(timeout=5)
    assert the_delivery(world)["state"] == "done"
    assert world.shop.orders[11].status == "processing"
    assert await work == 1


async def test_stop_cancels_a_delivery_past_its_timeout_and_the_next_start_resumes_it(
    world: World, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    await paid_callback(world)
    work = await running_until_the_put(world)
    await world.worker.stop(timeout=0.05)
    # The cancelled attempt has ended by the time stop returns.
    assert metric(world, "cryptum_bridge_delivery_attempt_seconds_count", store="main") == 1
    with contextlib.suppress(asyncio.CancelledError):
        await work

    # Cancelled, not failed: nothing recorded but the plan saved before the PUT.
    delivery = the_delivery(world)
    assert (delivery["state"], delivery["progress"], delivery["attempts"]) == (
        "pending",
        "acting",
        1,
    )
    assert delivery["last_error"] is None
    assert deliveries_counted(world, "retry") == 0
    plan = json.loads(delivery["decision"])

    await world.restart()
    (released,) = [line for line in logs() if line["event"] == "delivery.leases_released"]
    assert released["count"] == 1
    assert await world.worker.run_due() == 1
    assert the_delivery(world)["state"] == "done"
    assert world.shop.orders[11].status == "processing"
    assert world.bridge_notes(11) == [plan["note"]]


async def test_a_claimed_delivery_is_not_claimed_again_until_its_lease_ends(world: World) -> None:
    await paid_callback(world)
    claimed_at = world.clock.now
    await stop_during_the_put(world, timeout=0)

    # timeout_seconds is 0.5: a lease is 4 * 0.5 + 30 s, room for four requests.
    world.clock.now = claimed_at + 31.9
    assert await world.worker.run_due() == 0
    world.clock.now = claimed_at + 32
    assert await world.worker.run_due() == 1
    delivery = the_delivery(world)
    assert (delivery["state"], delivery["attempts"]) == ("done", 2)


async def test_stop_lets_the_loop_start_what_it_claimed_and_finish_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = world.app[STORAGE]
    real_claim = storage.claim
    claimed = asyncio.Event()

    async def slow_claim(*args: Any, **kwargs: Any) -> Any:
        jobs = await real_claim(*args, **kwargs)
        if jobs:
            claimed.set()
            await asyncio.sleep(0.1)  # a database slow to answer
        return jobs

    monkeypatch.setattr(storage, "claim", slow_claim)
    await world.worker.start()
    await paid_callback(world)
    await asyncio.wait_for(claimed.wait(), 5)

    await world.worker.stop(timeout=5)
    assert the_delivery(world)["state"] == "done"


async def test_the_loop_delivers_a_new_callback_without_being_asked(world: World) -> None:
    await world.worker.start()
    await paid_callback(world)
    await eventually(lambda: the_delivery(world)["state"] == "done")
    assert world.shop.orders[11].status == "processing"


async def test_the_loop_delivers_a_retry_its_idle_poll_finds_due(steady: World) -> None:
    world = steady
    await world.worker.start()
    world.shop.fail_next(1, status=503, method="PUT")
    await paid_callback(world)
    await eventually(lambda: the_delivery(world)["last_error"] is not None)
    delivery = the_delivery(world)
    assert delivery["state"] == "pending"

    # Nothing wakes the worker now: its own poll finds the retry due.
    world.clock.now = delivery["next_attempt_at"]
    await eventually(lambda: the_delivery(world)["state"] == "done")
    assert world.shop.orders[11].status == "processing"


async def test_the_worker_looks_at_the_queue_again_when_a_retry_falls_due_or_within_a_second(
    steady: World,
) -> None:
    world = steady
    worker = world.worker
    # A step returns how long the loop waits before the next one.
    assert await worker._step() == 1.0  # nothing queued
    await paid_callback(world)
    world.shop.fail_next(1, status=503, method="PUT")
    assert await worker.run_due() == 1
    due = the_delivery(world)["next_attempt_at"]  # in 5 s

    assert await worker._step() == 1.0
    world.clock.now = due - 0.25
    assert await worker._step() == pytest.approx(0.25)
    world.clock.now = due
    # Claimed and running: nothing else is due, nothing will be before a finish wakes it.
    assert await worker._step() == 1.0
    await worker.run_due()
    assert the_delivery(world)["state"] == "done"


async def test_a_failing_queue_is_logged_reported_and_tried_again_by_the_loop(
    world: World, logs: Callable[[], list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = world.app[STORAGE]
    real_claim = storage.claim

    async def broken_once(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(storage, "claim", real_claim)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(storage, "claim", broken_once)
    await world.worker.start()
    await eventually(lambda: "delivery.queue_error" in [line["event"] for line in logs()])
    (failed,) = [line for line in logs() if line["event"] == "delivery.queue_error"]
    assert (failed["loop"], failed["retry_in_seconds"]) == ("delivery", 1.0)
    problem = world.worker.loop.problem()
    assert problem is not None
    assert problem.startswith("delivery: failing for ")
    assert problem.endswith(" s (OperationalError)")

    await paid_callback(world)
    await eventually(lambda: the_delivery(world)["state"] == "done")
    assert world.worker.loop.problem() is None


# delivery.concurrency ---------------------------------------------------------------


class CountingShop(WooCommerceSimulator):
    """A shop that counts the requests it serves at once; each GET takes 0.3 s."""

    def __init__(self) -> None:
        super().__init__(latency_by_method={"GET": 0.3})
        self.serving = 0
        self.most_at_once = 0

    def app(self) -> web.Application:
        @web.middleware
        async def count(request: web.Request, handler: Any) -> web.StreamResponse:
            self.serving += 1
            self.most_at_once = max(self.most_at_once, self.serving)
            try:
                response: web.StreamResponse = await handler(request)
                return response
            finally:
                self.serving -= 1

        application = super().app()
        application.middlewares.append(count)
        return application


class ConcurrencyWorld(World):
    """A world with `delivery.concurrency` set and a shop that counts concurrent requests."""

    shop: CountingShop

    def __init__(self, directory: Path, *, concurrency: int) -> None:
        super().__init__(directory)
        self.concurrency = concurrency
        self.shop = CountingShop()

    def config_document(self) -> dict[str, Any]:
        document = super().config_document()
        # A timeout well above the shop's slow GETs, on a loaded machine too.
        document["delivery"].update(concurrency=self.concurrency, timeout_seconds=5)
        return document


@pytest.fixture
async def one_at_a_time(tmp_path: Path) -> AsyncIterator[ConcurrencyWorld]:
    started = ConcurrencyWorld(tmp_path, concurrency=1)
    await started.start()
    yield started
    await started.close()


@pytest.fixture
async def two_at_a_time(tmp_path: Path) -> AsyncIterator[ConcurrencyWorld]:
    started = ConcurrencyWorld(tmp_path, concurrency=2)
    await started.start()
    yield started
    await started.close()


def states(world: World) -> list[str]:
    return [row["state"] for row in world.rows("SELECT state FROM deliveries ORDER BY id")]


async def test_with_concurrency_1_deliveries_of_different_orders_run_one_at_a_time(
    one_at_a_time: ConcurrencyWorld,
) -> None:
    world = one_at_a_time
    await paid_callback(world, 11)
    assert await world.worker.run_due() == 1
    # The slot the first delivery held is free again, and only one.
    await paid_callback(world, 12)
    await paid_callback(world, 13)
    assert await world.worker.run_due() == 2
    assert states(world) == ["done", "done", "done"]
    assert world.shop.most_at_once == 1


async def test_with_concurrency_2_two_orders_are_delivered_at_once_and_a_third_waits(
    two_at_a_time: ConcurrencyWorld,
) -> None:
    world = two_at_a_time
    await paid_callback(world, 11)
    await paid_callback(world, 12)
    assert await world.worker.run_due() == 2
    assert world.shop.most_at_once == 2

    # The loop: two orders at once, and one arriving meanwhile waits for a free slot.
    await paid_callback(world, 13)
    await paid_callback(world, 14)
    await world.worker.start()
    await eventually(lambda: world.shop.serving == 2)
    await paid_callback(world, 15)
    await eventually(lambda: states(world) == ["done"] * 5)
    assert world.shop.most_at_once == 2


# Reloads ------------------------------------------------------------------------------

SECOND_API_KEY = "cryptum-api-key-second-world"
CONFIGURED_SECRETS.add(SECOND_API_KEY)


async def reload(world: World, document: dict[str, Any]) -> None:
    """What SIGHUP does with a config file reading `document`."""
    apply_config(world.app, parse_config(document, base_dir=world.directory))
    # A reload starts reconciliation; in this world it runs only when a test says.
    await world.reconciler.stop()


def with_second_store(world: World) -> dict[str, Any]:
    """The world's config and a second store, its orders in the same shop."""
    document = world.config_document()
    second = copy.deepcopy(document["stores"][0])
    second.update(
        name="second",
        cryptum_store_id=SECOND_STORE_ID,
        webhook_secret=SECOND_SECRET,
        cryptum_api_key=SECOND_API_KEY,
    )
    document["stores"].append(second)
    return document


async def test_a_store_added_by_a_reload_gets_its_deliveries_delivered(world: World) -> None:
    world.cryptum.add_store(SECOND_STORE_ID, api_key=SECOND_API_KEY, webhook_secret=SECOND_SECRET)
    await reload(world, with_second_store(world))

    world.shop.add_product(200, "Gadget", stock=10, price="12.50")
    world.shop.add_order(12, items=[(200, 1)])
    order = world.cryptum.create_order(
        store_id=SECOND_STORE_ID,
        ecommerce_order_id="12",
        total="12.50",
        callback_url=f"{world.url}/callbacks/cryptum",
    )
    world.cryptum.set_status(order.id, "confirmed", transactions=[("POLYGON", TX)])
    body = json.dumps(
        {
            "message": "Payment was successful",
            "status": "confirmed",
            "orderId": order.id,
            "ecommerceOrderId": "12",
            "storeId": SECOND_STORE_ID,
            "transactions": [{"protocol": "POLYGON", "hash": TX}],
        }
    ).encode()
    assert await world.post(Callback(body, sign(body, SECOND_SECRET))) == 200

    assert await world.worker.run_due() == 1
    delivery = the_delivery(world)
    assert (delivery["store"], delivery["state"]) == ("second", "done")
    assert world.shop.orders[12].status == "processing"
    # Confirmed with the API first, as for any store with an API key.
    assert [r.path for r in world.cryptum.api_requests] == [f"/plugins/orders/{order.id}"]


async def test_a_store_kept_by_a_reload_keeps_counting_its_running_deliveries(
    one_at_a_time: ConcurrencyWorld,
) -> None:
    world = one_at_a_time
    await paid_callback(world, 11)
    first = asyncio.create_task(world.worker.run_due())
    await eventually(lambda: world.shop.serving == 1)  # order 11's GET under way

    await reload(world, world.config_document())
    await paid_callback(world, 12)
    second = asyncio.create_task(world.worker.run_due())
    await asyncio.gather(first, second)
    assert states(world) == ["done", "done"]
    # Order 12 waited for the slot order 11 held across the reload.
    assert world.shop.most_at_once == 1


async def test_a_reload_clears_a_stores_config_problem(world: World) -> None:
    await paid_callback(world)
    world.shop.fail_next(1, status=401, method="GET")
    await world.worker.run_due()
    (problem,) = world.worker.problems()
    assert problem.startswith("store main: ")

    # New credentials, say: the next attempt tells whether they work.
    await reload(world, world.config_document())
    assert world.worker.problems() == []
