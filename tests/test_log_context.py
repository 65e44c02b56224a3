"""Bound log fields: on every later line of their task, never on another task's lines."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

import structlog

from bridge import log_context

log = structlog.get_logger("tests.log_context")


def test_bound_fields_are_on_every_later_line(logs: Callable[[], list[dict[str, Any]]]) -> None:
    def run() -> None:
        log.info("before")
        log_context.bind(request_id="r-1", store="main")
        log.info("first")
        log_context.bind(store="other")  # a key bound again takes the new value
        log.info("second")

    contextvars.copy_context().run(run)
    before, first, second = logs()
    assert "request_id" not in before and "store" not in before
    assert (first["request_id"], first["store"]) == ("r-1", "main")
    assert (second["request_id"], second["store"]) == ("r-1", "other")


def test_a_lines_own_field_wins_over_a_bound_one(
    logs: Callable[[], list[dict[str, Any]]],
) -> None:
    def run() -> None:
        log_context.bind(store="bound")
        log.info("line", store="own")

    contextvars.copy_context().run(run)
    assert logs()[0]["store"] == "own"


def test_clear_drops_every_bound_field(logs: Callable[[], list[dict[str, Any]]]) -> None:
    def run() -> None:
        log_context.bind(delivery_id=7)
        log_context.clear()
        log.info("line")
        assert log_context.bound() == {}

    contextvars.copy_context().run(run)
    assert "delivery_id" not in logs()[0]


async def test_what_a_task_binds_stays_in_that_task(
    logs: Callable[[], list[dict[str, Any]]],
) -> None:
    """Concurrent requests share nothing, nor does a task with the one that started it."""
    both_bound = asyncio.Barrier(2)

    async def request(request_id: str) -> None:
        log_context.bind(request_id=request_id)
        await both_bound.wait()  # the other task has bound its own by now
        log.info("handled")

    async def parent() -> dict[str, Any]:
        log_context.bind(store="main")
        await asyncio.gather(request("a"), request("b"))
        return dict(log_context.bound())

    # A task runs in a copy of the context it was created in, as aiohttp's do.
    parent_fields = await asyncio.create_task(parent())
    assert sorted(line["request_id"] for line in logs()) == ["a", "b"]
    assert all(line["store"] == "main" for line in logs())
    # Each task bound into a copy of the parent's fields, never into them.
    assert parent_fields == {"store": "main"}
    assert log_context.bound() == {}
