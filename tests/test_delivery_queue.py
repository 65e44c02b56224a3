"""The delivery queue on a real SQLite file: claims, leases, per-order order, requeue."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bridge.delivery_queue import DeliveryQueue
from bridge.storage import Database, NewEvent

NOW = 1_800_000_000.0


def event(key: str, woo_order_id: str, *, store: str = "main") -> NewEvent:
    return NewEvent(
        store=store,
        body_sha256=hashlib.sha256(key.encode()).digest(),
        source="callback",
        signature_form="json",
        request_id=None,
        cryptum_order_id=f"c-{key}",
        woo_order_id=woo_order_id,
        status="confirmed",
        payload=b"{}",
    )


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    opened = await Database.open(tmp_path / "bridge.sqlite3")
    yield opened
    await opened.close()


@pytest.fixture
def queue(database: Database) -> DeliveryQueue:
    return DeliveryQueue(database)


async def record(database: Database, *events: NewEvent) -> list[int]:
    return [(await database.record_event(e)).event_id for e in events]


async def test_every_event_has_a_pending_delivery(database: Database, queue: DeliveryQueue) -> None:
    await record(database, event("a", "1"), event("b", "2"))
    rows = await queue.list()
    assert sorted((row.woo_order_id, row.state, row.progress) for row in rows) == [
        ("1", "pending", "new"),
        ("2", "pending", "new"),
    ]


async def test_one_claim_per_order_in_arrival_order(
    database: Database, queue: DeliveryQueue
) -> None:
    await record(database, event("a1", "1"), event("b1", "2"), event("a2", "1"), event("a3", "1"))
    first = await queue.claim("main", 10, now=NOW + 10, lease_seconds=60)
    assert [(job.woo_order_id, job.cryptum_order_id) for job in first] == [
        ("1", "c-a1"),
        ("2", "c-b1"),
    ]
    assert all(job.attempts == 1 for job in first)
    # Leased work is not handed out twice, and order 1's later callbacks wait.
    assert await queue.claim("main", 10, now=NOW + 11, lease_seconds=60) == []

    await queue.finish(first[0].delivery_id, "done", "pay: payment confirmed", now=NOW + 12)
    second = await queue.claim("main", 10, now=NOW + 13, lease_seconds=60)
    assert [job.cryptum_order_id for job in second] == ["c-a2"]


async def test_claims_respect_the_limit_and_the_store(
    database: Database, queue: DeliveryQueue
) -> None:
    await record(database, event("a", "1"), event("b", "2"), event("c", "3", store="other"))
    assert len(await queue.claim("main", 1, now=NOW + 10, lease_seconds=60)) == 1
    assert [job.store for job in await queue.claim("other", 5, now=NOW + 10, lease_seconds=60)] == [
        "other"
    ]
    assert await queue.claim("main", 0, now=NOW + 10, lease_seconds=60) == []


async def test_an_expired_lease_is_claimed_again(database: Database, queue: DeliveryQueue) -> None:
    await record(database, event("a", "1"))
    (job,) = await queue.claim("main", 1, now=NOW + 10, lease_seconds=60)
    assert await queue.claim("main", 1, now=NOW + 69, lease_seconds=60) == []
    (again,) = await queue.claim("main", 1, now=NOW + 71, lease_seconds=60)
    assert again.delivery_id == job.delivery_id
    assert again.attempts == 2


async def test_releasing_leases_frees_work_of_a_dead_process(
    database: Database, queue: DeliveryQueue
) -> None:
    await record(database, event("a", "1"))
    await queue.claim("main", 1, now=NOW + 10, lease_seconds=600)
    assert await queue.release_leases() == 1
    assert len(await queue.claim("main", 1, now=NOW + 11, lease_seconds=600)) == 1


async def test_retry_later_waits_until_due(database: Database, queue: DeliveryQueue) -> None:
    await record(database, event("a", "1"))
    (job,) = await queue.claim("main", 1, now=NOW + 10, lease_seconds=60)
    await queue.retry_later(
        job.delivery_id, at=NOW + 100, error="WooCommerce answered 503", now=NOW + 11
    )
    assert await queue.claim("main", 1, now=NOW + 99, lease_seconds=60) == []
    assert await queue.next_due() == NOW + 100
    (again,) = await queue.claim("main", 1, now=NOW + 100, lease_seconds=60)
    assert again.attempts == 2
    row = await queue.get(job.delivery_id)
    assert row is not None and row.last_error == "WooCommerce answered 503"


async def test_progress_and_decision_survive_a_claim(
    database: Database, queue: DeliveryQueue
) -> None:
    await record(database, event("a", "1"))
    (job,) = await queue.claim("main", 1, now=NOW + 10, lease_seconds=60)
    await queue.save_progress(job.delivery_id, "acting", {"kind": "pay"}, now=NOW + 11)
    await queue.release_leases()
    (again,) = await queue.claim("main", 1, now=NOW + 12, lease_seconds=60)
    assert (again.progress, again.decision) == ("acting", {"kind": "pay"})


async def test_requeue_dead_starts_a_new_generation(
    database: Database, queue: DeliveryQueue
) -> None:
    await record(database, event("a", "1"), event("b", "2"))
    jobs = await queue.claim("main", 2, now=NOW + 10, lease_seconds=60)
    for job in jobs:
        await queue.finish(job.delivery_id, "dead", "order not found in WooCommerce", now=NOW + 11)
    assert await queue.requeue(state="dead", delivery_id=jobs[0].delivery_id, now=NOW + 20) == 1
    assert await queue.requeue(state="dead", now=NOW + 21) == 1
    again = await queue.claim("main", 5, now=NOW + 22, lease_seconds=60)
    assert [(job.generation, job.attempts, job.progress, job.age_from) for job in again] == [
        (2, 1, "new", NOW + 20),
        (2, 1, "new", NOW + 21),
    ]


async def test_replay_requeues_a_finished_delivery_only(
    database: Database, queue: DeliveryQueue
) -> None:
    (event_id,) = await record(database, event("a", "1"))
    assert await queue.requeue_event(event_id, now=NOW + 5) == 0  # still pending
    (job,) = await queue.claim("main", 1, now=NOW + 10, lease_seconds=60)
    await queue.finish(job.delivery_id, "done", "pay: payment confirmed", now=NOW + 11)
    assert await queue.requeue_event(event_id, now=NOW + 12) == 1
    assert (await queue.counts()) == {"pending": 1}


async def test_the_status_a_delivery_acted_on_is_recorded_as_applied(
    database: Database, queue: DeliveryQueue
) -> None:
    # The callback said confirmed; the delivery acted on what the API said.
    await record(database, event("callback", "1"))
    (job,) = await queue.claim("main", 5, now=NOW + 10, lease_seconds=60)
    assert await queue.applied_by("main", "c-callback", "cancelled") is None
    await queue.finish(
        job.delivery_id,
        "done",
        "set_status: payment cancelled",
        now=NOW + 11,
        applied_status="cancelled",
    )
    assert await queue.applied_by("main", "c-callback", "cancelled") == job.delivery_id
    # What the event claimed was seen, not applied.
    assert await queue.applied_by("main", "c-callback", "confirmed") is None
    assert await queue.applied_by("second", "c-callback", "cancelled") is None


async def test_a_status_applied_once_keeps_its_first_delivery(
    database: Database, queue: DeliveryQueue
) -> None:
    callback = event("callback", "1")
    # Reconciliation reports the same payment status in a body of its own.
    reconciled = replace(
        callback, body_sha256=hashlib.sha256(b"other").digest(), source="reconcile"
    )
    await record(database, callback, reconciled)
    (first,) = await queue.claim("main", 5, now=NOW + 10, lease_seconds=60)
    await queue.finish(first.delivery_id, "done", "pay", now=NOW + 11, applied_status="confirmed")
    (second,) = await queue.claim("main", 5, now=NOW + 12, lease_seconds=60)
    await queue.finish(second.delivery_id, "skipped", "x", now=NOW + 13, applied_status="confirmed")
    assert await queue.applied_by("main", "c-callback", "confirmed") == first.delivery_id


async def test_finishing_without_an_applied_status_records_nothing(
    database: Database, queue: DeliveryQueue
) -> None:
    await record(database, event("dead", "1"))
    (job,) = await queue.claim("main", 5, now=NOW + 10, lease_seconds=60)
    await queue.finish(job.delivery_id, "dead", "not confirmed", now=NOW + 11)
    assert await queue.applied_by("main", "c-dead", "confirmed") is None
    assert not await queue.knows_payment("main", "c-dead", "confirmed")


async def test_a_payment_is_known_while_a_delivery_of_its_order_is_pending(
    database: Database, queue: DeliveryQueue
) -> None:
    await record(database, replace(event("p", "1"), status="pending"))
    # Any pending delivery of the Cryptum order reads its status from the API.
    assert await queue.knows_payment("main", "c-p", "confirmed")
    assert not await queue.knows_payment("main", "c-other", "confirmed")
    assert not await queue.knows_payment("second", "c-p", "confirmed")
    (job,) = await queue.claim("main", 5, now=NOW + 10, lease_seconds=60)
    await queue.finish(
        job.delivery_id, "skipped", "pending", now=NOW + 11, applied_status="pending"
    )
    assert not await queue.knows_payment("main", "c-p", "confirmed")
    assert await queue.knows_payment("main", "c-p", "pending")


async def test_only_a_finished_not_dead_event_is_requeued_for_reconciliation(
    database: Database, queue: DeliveryQueue
) -> None:
    done_id, dead_id, pending_id = await record(
        database, event("done", "1"), event("dead", "2"), event("pending", "3")
    )
    jobs = await queue.claim("main", 2, now=NOW + 10, lease_seconds=60)
    await queue.finish(jobs[0].delivery_id, "done", "x", now=NOW + 11)
    await queue.finish(jobs[1].delivery_id, "dead", "x", now=NOW + 11)
    assert await queue.requeue_finished_event(done_id, now=NOW + 12) == 1
    assert await queue.requeue_finished_event(dead_id, now=NOW + 12) == 0
    assert await queue.requeue_finished_event(pending_id, now=NOW + 12) == 0
    states = {row.event_id: (row.state, row.progress) for row in await queue.list()}
    assert states[done_id] == ("pending", "new")
    assert states[dead_id][0] == "dead"


async def test_running_a_delivery_again_keeps_the_run_that_ended(
    database: Database, queue: DeliveryQueue
) -> None:
    done_id, dead_id = await record(database, event("done", "1"), event("dead", "2"))
    done, dead = await queue.claim("main", 2, now=NOW + 10, lease_seconds=60)
    await queue.finish(done.delivery_id, "done", "pay: payment confirmed", now=NOW + 11)
    await queue.finish(dead.delivery_id, "dead", "order not found in WooCommerce", now=NOW + 12)
    assert await queue.runs(done.delivery_id) == []

    assert await queue.requeue_event(done_id, now=NOW + 20) == 1  # replay
    assert await queue.requeue(state="dead", now=NOW + 21) == 1  # dead-letter retry
    (earlier,) = await queue.runs(done.delivery_id)
    summary = earlier.summary()
    assert summary.pop("started_at") < NOW + 11  # when the event arrived
    assert summary == {
        "generation": 1,
        "state": "done",
        "outcome": "pay: payment confirmed",
        "last_error": None,
        "attempts": 1,
        "finished_at": NOW + 11,
        "requeued_at": NOW + 20,
    }
    ((generation, state, outcome),) = [
        (run.generation, run.state, run.outcome) for run in await queue.runs(dead.delivery_id)
    ]
    assert (generation, state, outcome) == (1, "dead", "order not found in WooCommerce")
    # The rows themselves start over, as before.
    row = await queue.get(done.delivery_id)
    assert row is not None and (row.state, row.outcome, row.attempts) == ("pending", None, 0)

    for job in await queue.claim("main", 2, now=NOW + 30, lease_seconds=60):
        await queue.finish(job.delivery_id, "skipped", "skipped: already paid", now=NOW + 31)
    assert await queue.finished_runs() == {"done": 1, "dead": 1, "skipped": 2}
    # What waits for a person now is counted apart.
    assert await queue.counts() == {"skipped": 2}
    # Reconciliation's requeue keeps its run too.
    assert await queue.requeue_finished_event(dead_id, now=NOW + 40) == 1
    assert [run.state for run in await queue.runs(dead.delivery_id)] == ["dead", "skipped"]
