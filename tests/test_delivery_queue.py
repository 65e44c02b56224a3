"""The delivery queue on both engines (a SQLite file, a MariaDB database): claims, leases,
per-order order, requeue."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest

from bridge.config import StorageConfig
from bridge.storage import (
    DeliveryRow,
    EventFacts,
    Job,
    NewEvent,
    Storage,
    open_storage,
)

from engines import sql

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


class Clock:
    """The database's clock: an event recorded now arrives, and is due, at `now`."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def database(storage_settings: StorageConfig, clock: Clock) -> AsyncIterator[Storage]:
    opened = await open_storage(storage_settings, clock=clock)
    yield opened
    await opened.close()


@pytest.fixture
def queue(database: Storage) -> Storage:
    return database


ONLY_SQLITE = pytest.mark.parametrize("storage_settings", ["sqlite"], indirect=True)
ONLY_MARIADB = pytest.mark.parametrize("storage_settings", ["mariadb"], indirect=True)


async def record(database: Storage, *events: NewEvent) -> list[int]:
    return [(await database.record_event(e)).event_id for e in events]


async def test_every_event_has_a_pending_delivery(database: Storage, queue: Storage) -> None:
    await record(database, event("a", "1"), event("b", "2"))
    rows = await queue.list_deliveries()
    assert sorted((row.woo_order_id, row.state, row.progress) for row in rows) == [
        ("1", "pending", "new"),
        ("2", "pending", "new"),
    ]


async def test_one_claim_per_order_in_arrival_order(database: Storage, queue: Storage) -> None:
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


async def test_claims_respect_the_limit_and_the_store(database: Storage, queue: Storage) -> None:
    await record(database, event("a", "1"), event("b", "2"), event("c", "3", store="other"))
    assert len(await queue.claim("main", 1, now=NOW + 10, lease_seconds=60)) == 1
    assert [job.store for job in await queue.claim("other", 5, now=NOW + 10, lease_seconds=60)] == [
        "other"
    ]
    assert await queue.claim("main", 0, now=NOW + 10, lease_seconds=60) == []


async def test_an_expired_lease_is_claimed_again(database: Storage, queue: Storage) -> None:
    await record(database, event("a", "1"))
    (job,) = await queue.claim("main", 1, now=NOW + 10, lease_seconds=60)
    assert await queue.claim("main", 1, now=NOW + 69, lease_seconds=60) == []
    (again,) = await queue.claim("main", 1, now=NOW + 71, lease_seconds=60)
    assert again.delivery_id == job.delivery_id
    assert again.attempts == 2


@ONLY_SQLITE
async def test_releasing_leases_frees_work_of_a_dead_process(
    database: Storage, queue: Storage
) -> None:
    await record(database, event("a", "1"))
    await queue.claim("main", 1, now=NOW + 10, lease_seconds=600)
    assert await queue.release_leases() == 1
    assert len(await queue.claim("main", 1, now=NOW + 11, lease_seconds=600)) == 1


async def test_retry_later_waits_until_due(database: Storage, queue: Storage) -> None:
    await record(database, event("a", "1"))
    (job,) = await queue.claim("main", 1, now=NOW + 10, lease_seconds=60)
    await queue.retry_later(
        job.delivery_id, at=NOW + 100, error="WooCommerce answered 503", now=NOW + 11
    )
    assert await queue.claim("main", 1, now=NOW + 99, lease_seconds=60) == []
    assert await queue.next_due() == NOW + 100
    (again,) = await queue.claim("main", 1, now=NOW + 100, lease_seconds=60)
    assert again.attempts == 2
    row = await queue.get_delivery(job.delivery_id)
    assert row is not None and row.last_error == "WooCommerce answered 503"


async def test_progress_and_decision_survive_a_claim(database: Storage, queue: Storage) -> None:
    await record(database, event("a", "1"))
    (job,) = await queue.claim("main", 1, now=NOW + 10, lease_seconds=60)
    await queue.save_progress(job.delivery_id, "acting", {"kind": "pay"}, now=NOW + 11)
    # The process dies: its lease runs out.
    (again,) = await queue.claim("main", 1, now=NOW + 70, lease_seconds=60)
    assert (again.progress, again.decision) == ("acting", {"kind": "pay"})


async def test_requeue_dead_starts_a_new_generation(database: Storage, queue: Storage) -> None:
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


async def test_replay_requeues_a_finished_delivery_only(database: Storage, queue: Storage) -> None:
    (event_id,) = await record(database, event("a", "1"))
    assert await queue.requeue_event(event_id, now=NOW + 5) == 0  # still pending
    (job,) = await queue.claim("main", 1, now=NOW + 10, lease_seconds=60)
    await queue.finish(job.delivery_id, "done", "pay: payment confirmed", now=NOW + 11)
    assert await queue.requeue_event(event_id, now=NOW + 12) == 1
    assert (await queue.delivery_counts()) == {"pending": 1}


async def test_the_status_a_delivery_acted_on_is_recorded_as_applied(
    database: Storage, queue: Storage
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
    assert await queue.applied_by("main", "c-other", "cancelled") is None


async def test_a_status_applied_once_keeps_its_first_delivery(
    database: Storage, queue: Storage
) -> None:
    callback = event("callback", "1")
    # Reconciliation reports the same payment status in a body of its own.
    reconciled = callback._replace(
        body_sha256=hashlib.sha256(b"other").digest(), source="reconcile"
    )
    await record(database, callback, reconciled)
    (first,) = await queue.claim("main", 5, now=NOW + 10, lease_seconds=60)
    await queue.finish(first.delivery_id, "done", "pay", now=NOW + 11, applied_status="confirmed")
    (second,) = await queue.claim("main", 5, now=NOW + 12, lease_seconds=60)
    await queue.finish(second.delivery_id, "skipped", "x", now=NOW + 13, applied_status="confirmed")
    assert await queue.applied_by("main", "c-callback", "confirmed") == first.delivery_id


async def test_finishing_without_an_applied_status_records_nothing(
    database: Storage, queue: Storage
) -> None:
    await record(database, event("dead", "1"))
    (job,) = await queue.claim("main", 5, now=NOW + 10, lease_seconds=60)
    await queue.finish(job.delivery_id, "dead", "not confirmed", now=NOW + 11)
    assert await queue.applied_by("main", "c-dead", "confirmed") is None
    assert not await queue.knows_payment("main", "c-dead", "confirmed")


async def test_a_payment_is_known_while_a_delivery_of_its_order_is_pending(
    database: Storage, queue: Storage
) -> None:
    await record(database, event("p", "1")._replace(status="pending"))
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
    database: Storage, queue: Storage
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
    states = {row.event_id: (row.state, row.progress) for row in await queue.list_deliveries()}
    assert states[done_id] == ("pending", "new")
    assert states[dead_id][0] == "dead"


async def test_running_a_delivery_again_keeps_the_run_that_ended(
    database: Storage, queue: Storage
) -> None:
    done_id, dead_id = await record(database, event("done", "1"), event("dead", "2"))
    done, dead = await queue.claim("main", 2, now=NOW + 10, lease_seconds=60)
    await queue.finish(done.delivery_id, "done", "pay: payment confirmed", now=NOW + 11)
    await queue.finish(dead.delivery_id, "dead", "order not found in WooCommerce", now=NOW + 12)
    assert await queue.delivery_runs(done.delivery_id) == []

    assert await queue.requeue_event(done_id, now=NOW + 20) == 1  # replay
    assert await queue.requeue(state="dead", now=NOW + 21) == 1  # dead-letter retry
    (earlier,) = await queue.delivery_runs(done.delivery_id)
    summary = earlier.summary()
    assert summary == {
        "started_at": NOW,  # when the event arrived
        "generation": 1,
        "state": "done",
        "outcome": "pay: payment confirmed",
        "last_error": None,
        "attempts": 1,
        "finished_at": NOW + 11,
        "requeued_at": NOW + 20,
    }
    ((generation, state, outcome),) = [
        (run.generation, run.state, run.outcome)
        for run in await queue.delivery_runs(dead.delivery_id)
    ]
    assert (generation, state, outcome) == (1, "dead", "order not found in WooCommerce")
    # The rows themselves start over, as before.
    row = await queue.get_delivery(done.delivery_id)
    assert row is not None and (row.state, row.outcome, row.attempts) == ("pending", None, 0)

    for job in await queue.claim("main", 2, now=NOW + 30, lease_seconds=60):
        await queue.finish(job.delivery_id, "skipped", "skipped: already paid", now=NOW + 31)
    assert await queue.finished_runs() == {"done": 1, "dead": 1, "skipped": 2}
    # What waits for a person now is counted apart.
    assert await queue.delivery_counts() == {"skipped": 2}
    # Reconciliation's requeue keeps its run too.
    assert await queue.requeue_finished_event(dead_id, now=NOW + 40) == 1
    assert [run.state for run in await queue.delivery_runs(dead.delivery_id)] == ["dead", "skipped"]


async def test_a_claim_hands_out_each_event_with_its_delivery(
    database: Storage, queue: Storage
) -> None:
    paid = EventFacts(transactions=(("POLYGON", "0xa"),), message="Payment was successful")
    callback = event("a", "1")._replace(status="pending", payload=b'{"id": "a"}', facts=paid)
    # Reconciliation's own events carry no signature form.
    found = EventFacts(message="found by reconciliation")
    reconciled = event("b", "2")._replace(
        source="reconcile",
        signature_form=None,
        payload=b'{"id": "b"}',
        facts=found,
    )
    a_id, b_id = await record(database, callback, reconciled)
    ids = {row.event_id: row.id for row in await queue.list_deliveries()}
    jobs = await queue.claim("main", 5, now=NOW + 10, lease_seconds=60)
    assert jobs == [
        Job(
            delivery_id=ids[a_id],
            event_id=a_id,
            store="main",
            woo_order_id="1",
            cryptum_order_id="c-a",
            status="pending",
            facts=paid,
            attempts=1,
            progress="new",
            decision=None,
            generation=1,
            age_from=NOW,
            signature_form="json",
        ),
        Job(
            delivery_id=ids[b_id],
            event_id=b_id,
            store="main",
            woo_order_id="2",
            cryptum_order_id="c-b",
            status="confirmed",
            facts=found,
            attempts=1,
            progress="new",
            decision=None,
            generation=1,
            age_from=NOW,
            signature_form=None,
        ),
    ]


async def test_a_claim_for_no_deliveries_leases_none(database: Storage, queue: Storage) -> None:
    await record(database, event("a", "1"), event("b", "2"))
    assert await queue.claim("main", 0, now=NOW + 10, lease_seconds=60) == []
    # SQLite reads a negative LIMIT as no limit at all.
    assert await queue.claim("main", -1, now=NOW + 10, lease_seconds=60) == []
    assert [(row.attempts, row.updated_at) for row in await queue.list_deliveries()] == [
        (0, NOW),
        (0, NOW),
    ]


async def test_a_claim_takes_the_oldest_due_deliveries_up_to_the_limit(
    database: Storage, queue: Storage
) -> None:
    await record(database, event("a", "1"), event("b", "2"), event("c", "3"))
    first = await queue.claim("main", 2, now=NOW + 10, lease_seconds=60)
    assert [job.woo_order_id for job in first] == ["1", "2"]
    rest = await queue.claim("main", 2, now=NOW + 10, lease_seconds=60)
    assert [job.woo_order_id for job in rest] == ["3"]
    rows = {
        row.woo_order_id: (row.attempts, row.updated_at) for row in await queue.list_deliveries()
    }
    assert rows == {"1": (1, NOW + 10), "2": (1, NOW + 10), "3": (1, NOW + 10)}


async def test_a_delivery_is_due_from_its_arrival_not_before(
    database: Storage, queue: Storage
) -> None:
    await record(database, event("a", "1"))
    assert await queue.claim("main", 1, now=NOW - 0.5, lease_seconds=60) == []
    (job,) = await queue.claim("main", 1, now=NOW, lease_seconds=60)
    assert job.attempts == 1


async def test_a_lease_ends_at_its_last_instant(database: Storage, queue: Storage) -> None:
    await record(database, event("a", "1"))
    (job,) = await queue.claim("main", 1, now=NOW + 10, lease_seconds=60)
    assert await queue.claim("main", 1, now=NOW + 69.5, lease_seconds=60) == []
    (again,) = await queue.claim("main", 1, now=NOW + 70, lease_seconds=60)
    assert (again.delivery_id, again.attempts) == (job.delivery_id, 2)


async def test_an_order_waits_only_for_its_own_stores_pending_deliveries(
    database: Storage, queue: Storage
) -> None:
    # Order numbers are each shop's own: order 1 of two stores are two orders.
    await record(
        database, event("main1", "1"), event("other1", "1", store="other"), event("main2", "1")
    )
    (main,) = await queue.claim("main", 5, now=NOW + 10, lease_seconds=60)
    (other,) = await queue.claim("other", 1, now=NOW + 10, lease_seconds=60)
    assert (main.cryptum_order_id, other.cryptum_order_id) == ("c-main1", "c-other1")
    # A delivery that ended, even dead, no longer holds the order back.
    await queue.finish(main.delivery_id, "dead", "order not found", now=NOW + 11)
    (later,) = await queue.claim("main", 5, now=NOW + 12, lease_seconds=60)
    assert later.cryptum_order_id == "c-main2"


async def test_saving_progress_keeps_the_plan_and_its_time(
    database: Storage, queue: Storage
) -> None:
    await record(database, event("a", "1"), event("b", "2"))
    job, other = await queue.claim("main", 2, now=NOW + 10, lease_seconds=60)
    await queue.save_progress(job.delivery_id, "acting", {"kind": "pay"}, now=NOW + 11)
    row = await queue.get_delivery(job.delivery_id)
    assert row is not None and (row.progress, row.updated_at) == ("acting", NOW + 11)
    untouched = await queue.get_delivery(other.delivery_id)
    assert untouched is not None and (untouched.progress, untouched.updated_at) == (
        "new",
        NOW + 10,
    )

    await queue.save_progress(job.delivery_id, "new", None, now=NOW + 12)
    # No plan is no value, as on a fresh start: not the JSON text `null`.
    stored = await sql(
        database,
        "SELECT progress, decision, updated_at FROM deliveries WHERE id = ?",
        job.delivery_id,
    )
    assert stored == [("new", None, NOW + 12)]


@ONLY_SQLITE
async def test_releasing_leases_frees_every_held_lease_and_counts_them(
    database: Storage, queue: Storage
) -> None:
    await record(database, event("a", "1"), event("b", "2"), event("c", "3"), event("d", "4"))
    *_, c = await queue.claim("main", 3, now=NOW + 10, lease_seconds=600)
    await queue.finish(c.delivery_id, "done", "pay", now=NOW + 11)
    # Orders 1 and 2 hold a lease: 3 ended and 4 was never claimed.
    assert await queue.release_leases() == 2
    assert await queue.release_leases() == 0
    again = await queue.claim("main", 5, now=NOW + 12, lease_seconds=600)
    assert [(job.woo_order_id, job.attempts) for job in again] == [("1", 2), ("2", 2), ("4", 1)]


async def test_requeue_runs_again_only_what_ended_in_the_state(
    database: Storage, queue: Storage
) -> None:
    await record(
        database,
        event("done", "1"),
        event("dead1", "2"),
        event("dead2", "3"),
        event("skipped", "4"),
        event("pending", "5"),
    )
    done, dead1, dead2, skipped = await queue.claim("main", 4, now=NOW + 10, lease_seconds=60)
    await queue.save_progress(dead1.delivery_id, "acting", {"kind": "pay"}, now=NOW + 11)
    await queue.retry_later(dead1.delivery_id, at=NOW + 20, error="timed out", now=NOW + 12)
    (retried,) = await queue.claim("main", 1, now=NOW + 20, lease_seconds=60)
    assert retried.delivery_id == dead1.delivery_id
    await queue.finish(done.delivery_id, "done", "pay", now=NOW + 30)
    await queue.finish(dead1.delivery_id, "dead", "gave up", now=NOW + 30)
    await queue.finish(dead2.delivery_id, "dead", "gave up", now=NOW + 30)
    await queue.finish(skipped.delivery_id, "skipped", "paid", now=NOW + 30)

    assert await queue.requeue(state="dead", delivery_id=done.delivery_id, now=NOW + 40) == 0
    assert await queue.requeue(state="dead", delivery_id=dead1.delivery_id, now=NOW + 40) == 1
    assert await queue.requeue(state="dead", now=NOW + 41) == 1
    assert await queue.requeue(state="dead", now=NOW + 42) == 0
    assert await queue.requeue(state="done", delivery_id=10_000, now=NOW + 42) == 0
    assert await queue.delivery_counts() == {"done": 1, "skipped": 1, "pending": 3}

    row = await queue.get_delivery(dead1.delivery_id)
    assert row is not None
    assert row.summary() == {
        "id": dead1.delivery_id,
        "event_id": dead1.event_id,
        "store": "main",
        "woo_order_id": "2",
        "cryptum_order_id": "c-dead1",
        "status": "confirmed",
        "state": "pending",
        "progress": "new",
        "attempts": 0,
        "next_attempt_at": NOW + 40,
        "last_error": None,
        "outcome": None,
        "created_at": NOW,
        "updated_at": NOW + 40,
    }
    jobs = await queue.claim("main", 5, now=NOW + 50, lease_seconds=60)
    assert [(job.cryptum_order_id, job.generation, job.decision, job.age_from) for job in jobs] == [
        ("c-dead1", 2, None, NOW + 40),
        ("c-dead2", 2, None, NOW + 41),
        ("c-pending", 1, None, NOW),
    ]


async def test_requeue_for_reconciliation_takes_done_and_skipped_only(
    database: Storage, queue: Storage
) -> None:
    done_id, skipped_id, dead_id, pending_id = await record(
        database, event("done", "1"), event("skipped", "2"), event("dead", "3"), event("p", "4")
    )
    done, skipped, dead = await queue.claim("main", 3, now=NOW + 10, lease_seconds=60)
    await queue.finish(done.delivery_id, "done", "pay", now=NOW + 11)
    await queue.finish(skipped.delivery_id, "skipped", "paid", now=NOW + 11)
    await queue.finish(dead.delivery_id, "dead", "gave up", now=NOW + 11)

    assert await queue.requeue_finished_event(done_id, now=NOW + 20) == 1
    assert await queue.requeue_finished_event(skipped_id, now=NOW + 20) == 1
    assert await queue.requeue_finished_event(dead_id, now=NOW + 20) == 0
    assert await queue.requeue_finished_event(pending_id, now=NOW + 20) == 0
    assert await queue.requeue_finished_event(10_000, now=NOW + 20) == 0
    # Requeued once, a delivery is pending and not requeued again.
    assert await queue.requeue_finished_event(done_id, now=NOW + 21) == 0
    jobs = await queue.claim("main", 5, now=NOW + 30, lease_seconds=60)
    assert [(job.event_id, job.generation, job.attempts, job.age_from) for job in jobs] == [
        (done_id, 2, 1, NOW + 20),
        (skipped_id, 2, 1, NOW + 20),
        (pending_id, 1, 1, NOW),
    ]


async def test_next_due_is_the_earliest_pending_attempt_leased_or_not(
    database: Storage, queue: Storage, clock: Clock
) -> None:
    assert await queue.next_due() is None
    await record(database, event("a", "1"))
    clock.now = NOW + 5
    await record(database, event("b", "2"))
    assert await queue.next_due() == NOW
    a, b = await queue.claim("main", 2, now=NOW + 10, lease_seconds=60)
    assert await queue.next_due() == NOW
    await queue.finish(a.delivery_id, "done", "pay", now=NOW + 11)
    assert await queue.next_due() == NOW + 5
    await queue.retry_later(b.delivery_id, at=NOW + 50, error="503", now=NOW + 12)
    assert await queue.next_due() == NOW + 50
    await queue.finish(b.delivery_id, "dead", "gave up", now=NOW + 13)
    assert await queue.next_due() is None


async def test_oldest_pending_is_when_the_oldest_waiting_delivery_arrived(
    database: Storage, queue: Storage, clock: Clock
) -> None:
    assert await queue.oldest_pending() is None
    await record(database, event("a", "1"))
    clock.now = NOW + 5
    await record(database, event("b", "2"))
    assert await queue.oldest_pending() == NOW
    a, b = await queue.claim("main", 2, now=NOW + 10, lease_seconds=60)
    # A retry postpones the attempt, not the arrival.
    await queue.retry_later(a.delivery_id, at=NOW + 100, error="503", now=NOW + 11)
    assert await queue.oldest_pending() == NOW
    await queue.finish(a.delivery_id, "done", "pay", now=NOW + 12)
    assert await queue.oldest_pending() == NOW + 5
    await queue.finish(b.delivery_id, "skipped", "paid", now=NOW + 13)
    assert await queue.oldest_pending() is None


async def test_counts_are_per_state_and_only_for_the_states_named(
    database: Storage, queue: Storage
) -> None:
    assert await queue.delivery_counts() == {}
    await record(
        database,
        event("a", "1"),
        event("b", "2"),
        event("c", "3"),
        event("d", "4"),
        event("e", "5"),
    )
    a, b, c, _ = await queue.claim("main", 4, now=NOW + 10, lease_seconds=60)
    await queue.finish(a.delivery_id, "done", "pay", now=NOW + 11)
    await queue.finish(b.delivery_id, "dead", "gave up", now=NOW + 11)
    await queue.finish(c.delivery_id, "dead", "gave up", now=NOW + 11)
    assert await queue.delivery_counts() == {"done": 1, "dead": 2, "pending": 2}
    assert await queue.delivery_counts(("pending", "dead")) == {"pending": 2, "dead": 2}
    assert await queue.delivery_counts(["done"]) == {"done": 1}
    # A state with nothing in it is left out, not counted as zero.
    assert await queue.delivery_counts(["skipped", "done"]) == {"done": 1}
    assert await queue.delivery_counts([]) == {}


async def test_list_filters_by_state_and_store_newest_first(
    database: Storage, queue: Storage
) -> None:
    await record(
        database,
        event("a", "1"),
        event("b", "1", store="other"),
        event("c", "2"),
        event("d", "2", store="other"),
        event("e", "3"),
    )
    for job in await queue.claim("main", 5, now=NOW + 10, lease_seconds=60):
        await queue.finish(job.delivery_id, "dead", "gave up", now=NOW + 11)
    (other,) = await queue.claim("other", 1, now=NOW + 10, lease_seconds=60)
    await queue.finish(other.delivery_id, "done", "pay", now=NOW + 11)
    # Main's orders 1, 2 and 3 are dead; other's order 1 done, order 2 pending.

    def keys(rows: list[DeliveryRow]) -> list[str]:
        return [row.cryptum_order_id for row in rows]

    assert keys(await queue.list_deliveries()) == ["c-e", "c-d", "c-c", "c-b", "c-a"]
    assert keys(await queue.list_deliveries(state="dead")) == ["c-e", "c-c", "c-a"]
    assert keys(await queue.list_deliveries(store="other")) == ["c-d", "c-b"]
    assert keys(await queue.list_deliveries(state="done", store="other")) == ["c-b"]
    assert keys(await queue.list_deliveries(state="pending", store="main")) == []
    assert keys(await queue.list_deliveries(limit=2)) == ["c-e", "c-d"]
    assert keys(await queue.list_deliveries(state="dead", limit=2)) == ["c-e", "c-c"]


async def test_list_shows_fifty_deliveries_unless_told(database: Storage, queue: Storage) -> None:
    event_ids = await record(database, *(event(str(n), str(n)) for n in range(51)))
    rows = await queue.list_deliveries()
    assert [row.event_id for row in rows] == event_ids[:0:-1]
    assert len(await queue.list_deliveries(limit=51)) == 51


async def test_get_shows_a_delivery_with_its_event(database: Storage, queue: Storage) -> None:
    (event_id,) = await record(database, event("a", "7", store="other")._replace(status="paid"))
    (job,) = await queue.claim("other", 1, now=NOW + 10, lease_seconds=60)
    await queue.save_progress(job.delivery_id, "acting", {"kind": "pay"}, now=NOW + 11)
    await queue.retry_later(
        job.delivery_id, at=NOW + 50, error="WooCommerce answered 503", now=NOW + 12
    )
    await queue.finish(job.delivery_id, "dead", "order not found", now=NOW + 60)
    row = await queue.get_delivery(job.delivery_id)
    assert row is not None
    assert row.summary() == {
        "id": job.delivery_id,
        "event_id": event_id,
        "store": "other",
        "woo_order_id": "7",
        "cryptum_order_id": "c-a",
        "status": "paid",
        "state": "dead",
        "progress": "acting",
        "attempts": 1,
        "next_attempt_at": NOW + 50,
        "last_error": "WooCommerce answered 503",
        "outcome": "order not found",
        "created_at": NOW,
        "updated_at": NOW + 60,
    }
    assert await queue.get_delivery(job.delivery_id + 1) is None


async def test_an_event_stored_before_facts_were_kept_is_claimed_with_its_payload(
    database: Storage, queue: Storage
) -> None:
    (event_id,) = await record(database, event("a", "1")._replace(payload=b'{"old": 1}'))
    await sql(database, "UPDATE events SET facts = NULL WHERE id = ?", event_id)
    (job,) = await queue.claim("main", 5, now=NOW + 10, lease_seconds=60)
    assert (job.facts, job.payload) == (None, b'{"old": 1}')
