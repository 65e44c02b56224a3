"""One way to run work in the background: delivery, reconciliation, retention, checkpoints.

A `BackgroundLoop` runs one step, waits as long as the step asks (or until
`wake`), and runs it again, until stopped. A step that raises is logged and
retried after a pause that doubles up to a minute, so a broken database is
neither hammered nor given up on; until a step succeeds again the loop is
unhealthy, and `/readyz` says which loop fails and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import structlog

__all__ = ["BackgroundLoop", "Step"]

log = structlog.get_logger("bridge.background")

# A step returns how many seconds to wait before the next one.
Step = Callable[[], Awaitable[float]]

# The pause after a failed step: doubled after each failure in a row, up to the maximum.
FAILURE_PAUSE_SECONDS = 1.0
FAILURE_PAUSE_MAX_SECONDS = 60.0


class BackgroundLoop:
    """Runs `step` until stopped, catching, logging and reporting what it raises."""

    def __init__(
        self,
        name: str,
        step: Step,
        *,
        failed_event: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._step = step
        # The log event of a failed step: each loop keeps its documented name.
        self._failed_event = failed_event
        self._clock = clock
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        self._failing_since: float | None = None
        self._last_error = ""

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Run the first step now, in a task of its own."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=self.name)

    def wake(self) -> None:
        """Run the next step now rather than when the last one asked."""
        self._wakeup.set()

    def problem(self) -> str | None:
        """Why the loop is unhealthy, for `/readyz`; None while its steps succeed."""
        if self._task is not None and self._task.done() and not self._stopping:
            return f"{self.name}: stopped"
        if self._failing_since is None:
            return None
        seconds = self._clock() - self._failing_since
        return f"{self.name}: failing for {seconds:.0f} s ({self._last_error})"

    async def stop(self, *, timeout: float | None = None) -> None:
        """Let a running step finish within `timeout` seconds (None: cancel it at once)."""
        self._stopping = True
        self.wake()
        task, self._task = self._task, None
        if task is None:
            return
        if timeout is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), timeout)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            wait = await self._run_step()
            if self._stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), wait)

    async def _run_step(self) -> float:
        """One step; how long to wait before the next."""
        try:
            wait: float = await self._step()
        except Exception as error:  # a bug or a broken database: report it, try again
            self._failures += 1
            if self._failing_since is None:
                self._failing_since = self._clock()
            self._last_error = _describe(error)
            pause = min(
                FAILURE_PAUSE_SECONDS * 2.0 ** min(self._failures - 1, 16),
                FAILURE_PAUSE_MAX_SECONDS,
            )
            log.exception(self._failed_event, loop=self.name, retry_in_seconds=pause)
            return pause
        if self._failing_since is not None:
            log.info("background.recovered", loop=self.name, failures=self._failures)
        self._failures = 0
        self._failing_since = None
        return wait


def _describe(error: Exception) -> str:
    """A failure as `/readyz` may show it: never the message, which may carry data or paths.

    The bridge's own failures (`StorageUnavailable`, `UpstreamFailure`) carry a
    `reason` written to be shown; anything else is named by its type.
    """
    reason = getattr(error, "reason", None)
    return reason if isinstance(reason, str) else type(error).__name__
