"""Group commit: many concurrent writers, one transaction per batch.

A durable commit costs an fsync, which dominates the cost of storing a
callback. Requests that arrive while a commit is in flight queue up and are
committed together by the next one, so under load the fsync is shared, and
with no load a request waits for nothing but its own commit.

A database whose statements run one after another on a thread of their own
(SQLite's) can take the next batch while the previous one commits: the
batch is then ready in that thread's queue the moment the fsync ends,
instead of waiting for the event loop to learn of the end and hand it over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["GroupCommitter", "WriterClosed"]

Item = TypeVar("Item")
Result = TypeVar("Result")


class WriterClosed(Exception):
    """The writer is shut down and takes no more work."""


class GroupCommitter(Generic[Item, Result]):
    """Runs `commit_batch` on queued items, at most `max_batch` items at a time.

    `commit_batch` gets a list of items and returns one result per item, or
    raises, in which case every item of that batch gets the exception.

    Up to `max_in_flight` batches are committing at once, each started after
    the one before it: a `commit_batch` that queues its one write before its
    first wait (SQLite's single thread) commits the batches in order. A batch
    holding an item for which `alone(item)` is true (an item that makes its
    batch write more than once) commits with no other batch in flight.
    """

    def __init__(
        self,
        commit_batch: Callable[[list[Item]], Awaitable[list[Result]]],
        *,
        max_batch: int,
        max_in_flight: int = 1,
        alone: Callable[[Item], bool] = lambda item: False,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._commit_batch = commit_batch
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._alone = alone
        # A list, not an asyncio.Queue: the writer takes a whole batch at once,
        # and a queue's bookkeeping per item costs more than the rest of a submit.
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        # Set while the writer waits; the next submit or the end of a commit completes it.
        self._work_arrived: asyncio.Future[None] | None = None
        self._wake_on_submit = True
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0
        self.items = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="group-commit")

    async def submit(self, item: Item) -> Result:
        """Queue `item` and wait until the batch holding it is committed."""
        if self._closing or self._task is None:
            raise WriterClosed()
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._wake_on_submit:
            self._wake_writer()
        return await future

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is None:
            return
        self._closing = True
        self._wake_writer()
        await self._task
        self._task = None

    def _wake_writer(self) -> None:
        arrived = self._work_arrived
        if arrived is not None and not arrived.done():
            arrived.set_result(None)

    async def _run(self) -> None:
        # Each batch committing, and whether it must be the only one.
        committing: dict[asyncio.Task[None], bool] = {}
        try:
            while True:
                committing = {task: alone for task, alone in committing.items() if not task.done()}
                if self._waiting:
                    batch = self._waiting[: self._max_batch]
                    alone = any(self._alone(item) for item, _ in batch)
                    if self._has_place(committing, alone):
                        del self._waiting[: self._max_batch]
                        committing[asyncio.create_task(self._commit(batch))] = alone
                        continue
                if not self._waiting and not committing and self._closing:
                    return
                # Woken by the end of a commit; by new work too unless work already
                # waits, which only the end of a commit can let start.
                self._wake_on_submit = not self._waiting
                self._work_arrived = asyncio.get_running_loop().create_future()
                await self._work_arrived
                self._work_arrived = None
        finally:
            for task in committing:  # only if this task was cancelled
                task.cancel()

    def _has_place(self, committing: dict[asyncio.Task[None], bool], alone: bool) -> bool:
        """Whether a batch (one that must commit `alone`, or not) may start now."""
        if not committing:
            return True
        return not alone and not any(committing.values()) and len(committing) < self._max_in_flight

    async def _commit(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            await self._commit_and_answer(batch)
        finally:
            self._wake_writer()  # a place is free

    async def _commit_and_answer(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            results = await self._commit_batch([item for item, _ in batch])
            if len(results) != len(batch):
                # A bug, but one that must not leave a waiter waiting forever.
                raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
        except Exception as error:  # every waiter learns of the failure, the writer lives on
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
