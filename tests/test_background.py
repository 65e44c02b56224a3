"""The background loop every long-running part of the daemon runs in, and `/readyz` reporting it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bridge import background
from bridge.app import create_app
from bridge.background import BackgroundLoop
from bridge.config import parse_config
from bridge.storage import SqliteStorage, StorageUnavailable

from support import CONFIGURED_SECRETS, MAIN_STORE_ID, config_document

API_KEY = "cryptum-api-key-background"
CONFIGURED_SECRETS.add(API_KEY)


@pytest.fixture(autouse=True)
def short_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pauses after a failure of 10 ms, doubling: the behaviour, not the minutes."""
    monkeypatch.setattr(background, "FAILURE_PAUSE_SECONDS", 0.01)
    monkeypatch.setattr(background, "FAILURE_PAUSE_MAX_SECONDS", 0.04)


async def eventually(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_failing_step_is_logged_reported_and_retried_until_it_recovers(
    logs: Callable[[], list[dict[str, Any]]],
) -> None:
    outcomes: list[Exception | None] = [RuntimeError("a"), OSError("b"), OSError("c"), None]
    steps: list[float] = []
    clock = Clock()

    async def step() -> float:
        steps.append(clock.now)
        outcome = outcomes.pop(0) if outcomes else None
        if outcome is not None:
            clock.now += 5
            raise outcome
        return 3600

    loop = BackgroundLoop("sweeper", step, failed_event="sweeper.failed", clock=clock)
    assert loop.problem() is None
    loop.start()
    await eventually(lambda: len(steps) == 4)
    await eventually(lambda: loop.problem() is None)
    await loop.stop()

    failures = [line for line in logs() if line["event"] == "sweeper.failed"]
    assert [line["loop"] for line in failures] == ["sweeper"] * 3
    # The pause doubles after each failure in a row, up to the maximum.
    assert [line["retry_in_seconds"] for line in failures] == [0.01, 0.02, 0.04]
    assert all(line["level"] == "error" and "exception" in line for line in failures)
    (recovered,) = [line for line in logs() if line["event"] == "background.recovered"]
    assert (recovered["loop"], recovered["failures"]) == ("sweeper", 3)


async def test_the_problem_names_the_loop_the_error_type_and_how_long_it_has_failed() -> None:
    clock = Clock()
    failing = asyncio.Event()

    async def step() -> float:
        failing.set()
        clock.now += 30
        raise sqlite3.OperationalError("disk I/O error: /var/lib/secret-path")

    loop = BackgroundLoop("reconcile", step, failed_event="reconcile.crashed", clock=clock)
    loop.start()
    await failing.wait()
    await eventually(lambda: loop.problem() is not None)
    first = clock.now
    clock.now = first + 12
    # The error's type, never its message (which may carry paths or data).
    assert loop.problem() == "reconcile: failing for 12 s (OperationalError)"
    await loop.stop()


async def test_wake_runs_the_next_step_before_its_wait_is_over() -> None:
    ran = asyncio.Event()
    steps = 0

    async def step() -> float:
        nonlocal steps
        steps += 1
        ran.set()
        return 3600

    loop = BackgroundLoop("worker", step, failed_event="worker.failed")
    loop.start()
    await ran.wait()
    ran.clear()
    loop.wake()
    await asyncio.wait_for(ran.wait(), timeout=5)
    assert steps == 2
    await loop.stop()


async def test_stop_lets_a_running_step_finish_within_the_deadline() -> None:
    started, finished = asyncio.Event(), asyncio.Event()

    async def step() -> float:
        started.set()
        await asyncio.sleep(0.05)
        finished.set()
        return 3600

    loop = BackgroundLoop("worker", step, failed_event="worker.failed")
    loop.start()
    await started.wait()
    await loop.stop(timeout=5)
    assert finished.is_set()
    assert not loop.running
    assert loop.problem() is None  # stopped on purpose: not a problem


async def test_stop_cancels_a_step_past_the_deadline_or_at_once_without_one() -> None:
    started = asyncio.Event()
    cancelled = 0

    async def step() -> float:
        nonlocal cancelled
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled += 1
            raise
        return 3600

    for timeout in (0.05, None):
        started.clear()
        loop = BackgroundLoop("reconcile", step, failed_event="reconcile.crashed")
        loop.start()
        await started.wait()
        await asyncio.wait_for(loop.stop(timeout=timeout), timeout=5)
        assert not loop.running
    assert cancelled == 2


async def test_a_reconciliation_failing_on_the_database_shows_in_readyz_and_recovers(
    aiohttp_server: Any,
    aiohttp_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    logs: Callable[[], list[dict[str, Any]]],
) -> None:
    async def orders(_: web.Request) -> web.Response:
        entry = {"id": "c-1", "ecommerceOrderId": "12", "store": MAIN_STORE_ID}
        return web.json_response({"total": 1, "orders": [entry]})

    api = web.Application()
    api.router.add_get("/plugins/orders/", orders)
    server = await aiohttp_server(api)
    document = config_document(tmp_path / "bridge.sqlite3")
    document["reconcile"] = {"interval_seconds": 1}
    document["stores"][0] |= {
        "cryptum_api_key": API_KEY,
        "cryptum_api_url": str(server.make_url("/plugins")),
    }
    broken = True
    real_knows_payment = SqliteStorage.knows_payment

    async def knows_payment(self: SqliteStorage, *args: Any, **kwargs: Any) -> bool:
        if broken:
            raise sqlite3.OperationalError("database disk image is malformed")
        return await real_knows_payment(self, *args, **kwargs)

    monkeypatch.setattr(SqliteStorage, "knows_payment", knows_payment)
    config = parse_config(document, base_dir=tmp_path)
    client = await aiohttp_client(create_app(config, background=True))

    async def reasons() -> list[str]:
        answer = await client.get("/readyz")
        body = await answer.json()
        return [] if answer.status == 200 else list(body["reasons"])

    found: list[str] = []
    deadline = asyncio.get_running_loop().time() + 10
    while not found:
        assert asyncio.get_running_loop().time() < deadline, "never reported"
        found = await reasons()
        await asyncio.sleep(0.05)
    (reason,) = found
    assert reason.startswith("reconcile: failing for ")
    assert reason.endswith("(OperationalError)")
    assert any(line["event"] == "reconcile.crashed" for line in logs())

    broken = False
    # Its delivery may report problems of its own (this API serves no order); not reconciliation.
    while any(reason.startswith("reconcile:") for reason in await reasons()):
        assert asyncio.get_running_loop().time() < deadline + 10, "never recovered"
        await asyncio.sleep(0.05)
    events = [line["event"] for line in logs()]
    assert "background.recovered" in events
    assert "reconcile.enqueued" in events  # the pass that failed was done once it could be


async def test_a_failure_of_the_bridges_own_kind_is_shown_by_its_reason() -> None:
    failed = asyncio.Event()

    async def step() -> float:
        failed.set()
        raise StorageUnavailable("sqlite_full")

    loop = BackgroundLoop("retention", step, failed_event="retention.failed", clock=Clock())
    loop.start()
    await failed.wait()
    await eventually(lambda: loop.problem() is not None)
    assert loop.problem() == "retention: failing for 0 s (sqlite_full)"
    await loop.stop()
