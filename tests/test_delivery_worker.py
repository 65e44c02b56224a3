"""The delivery worker's dead ends, driven in this process on a virtual clock.

The real app (`create_app`, background loops off), the simulated Cryptum and
the simulated shop on 127.0.0.1, as in `payment_world`: the test calls
`run_due` and moves the clock, so days of backoff pass with nothing asleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bridge import delivery_stages as delivery_module
from bridge.app_keys import METRICS
from bridge.signature import sign

from payment_world import LOOKBACK_HOURS, Callback, World
from support import MAIN_SECRET, MAIN_STORE_ID

TX = "0x5eed"


class ShortLivedWorld(World):
    """A world whose bridge gives up on a delivery after one hour."""

    def config_document(self) -> dict[str, Any]:
        document = super().config_document()
        document["delivery"]["max_age_hours"] = 1
        return document


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    started = World(tmp_path)
    await started.start()
    yield started
    await started.close()


@pytest.fixture
async def short_lived(tmp_path: Path) -> AsyncIterator[World]:
    started = ShortLivedWorld(tmp_path)
    await started.start()
    yield started
    await started.close()


def recorded(world: World, query: str) -> list[dict[str, Any]]:
    with sqlite3.connect(world.directory / "bridge.sqlite3") as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute(query)]


def the_delivery(world: World) -> dict[str, Any]:
    (delivery,) = recorded(world, "SELECT * FROM deliveries")
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
    assert recorded(world, "SELECT * FROM applied_payments") == []
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
    assert recorded(world, "SELECT * FROM applied_payments") == []


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

    assert await world.worker.run_due() == 1
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
    (applied,) = [line for line in logs() if line["event"] == "delivery.applied"]
    assert (applied["action"], applied["target_status"], applied["attempts"]) == (
        "pay",
        "processing",
        1,
    )
    assert (applied["delivery_id"], applied["woo_order_id"]) == (delivery["id"], "11")
    assert applied["cryptum_order_id"] == cryptum_id


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
    assert recorded(world, "SELECT status FROM applied_payments") == [{"status": "confirmed"}]


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
    assert recorded(world, "SELECT * FROM applied_payments") == []


async def test_an_order_missing_from_the_shop_is_dead_lettered_at_once(
    world: World, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    await paid_callback(world)
    del world.shop.orders[11]

    await world.worker.run_due()
    delivery = the_delivery(world)
    assert (delivery["state"], delivery["attempts"]) == ("dead", 1)
    assert delivery["outcome"] == "order not found in WooCommerce"
    assert [line["reason"] for line in logs() if line["event"] == "delivery.dead"] == [
        "order not found in WooCommerce"
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
    assert error["status"] == 401

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
    second = recorded(world, "SELECT * FROM deliveries WHERE id != " + str(first["id"]))[0]
    assert second["state"] == "skipped"
    assert second["outcome"] == f"confirmed already applied by delivery {first['id']}"
    assert len(world.cryptum.api_requests) == api_requests
    assert len(world.bridge_notes(11)) == 1
    assert deliveries_counted(world, "skipped") == 1


async def test_a_callback_the_api_disagrees_with_is_rechecked_then_the_api_wins(
    world: World,
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


async def test_a_callback_ahead_of_the_api_waits_for_it_no_longer_than_reconciliation(
    steady: World, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    world = steady
    cryptum_id = world.checkout(11)
    # Signed by Cryptum, but its API still says pending.
    assert await world.post(world.callback(cryptum_id, "confirmed", tx=TX)) == 200
    received = world.clock.now

    waits = []
    while the_delivery(world)["state"] == "pending":
        before = world.clock.now
        await world.worker.run_due()
        delivery = the_delivery(world)
        if delivery["state"] == "pending":
            waits.append(delivery["next_attempt_at"] - before)
            world.clock.now = delivery["next_attempt_at"]
    # Backoff from 5 s, never longer than reconcile.interval_seconds (300).
    assert waits[:8] == pytest.approx([5, 10, 20, 40, 80, 160, 300, 300])
    assert max(waits) <= 300
    delivery = the_delivery(world)
    assert delivery["state"] == "dead"
    # The last look is at the end of the lookback, not after it.
    assert world.clock.now == pytest.approx(received + LOOKBACK_HOURS * 3600)
    assert delivery["outcome"] == (
        "the Cryptum API says 'pending' where the callback says 'confirmed' "
        "2 h after it arrived: nothing applied"
    )
    assert world.shop.orders[11].status == "pending"
    assert deliveries_counted(world, "retry") == len(waits)
    awaiting = [line for line in logs() if line["event"] == "delivery.awaiting_cryptum"]
    assert [line["delay_seconds"] for line in awaiting][:2] == [5, 10]


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
    assert meta(world, 11)["_cryptum_checkout_order_transactions_message"] == (
        "Payment was successful"
    )
    assert json.loads(meta(world, 11)["_cryptum_checkout_order_transactions"]) == [
        {"protocol": "POLYGON", "hash": TX}
    ]
    assert meta(world, 11)["_cryptum_order_id"] == cryptum_id


def meta(world: World, woo_order_id: int) -> dict[str, Any]:
    return {item["key"]: item["value"] for item in world.shop.orders[woo_order_id].meta_data}
