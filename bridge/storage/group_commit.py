"""Group commit: many concurrent writers, one transaction per batch.

A durable commit costs an fsync, which dominates the cost of storing a
callback. Requests that arrive while a commit is in flight queue up and are
committed together by the next one, so under load the fsync is shared, and
with no load a request waits for nothing but its own commit.
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
    """Runs `commit_batch` on queued items from one task, at most `max_batch` at a time.

    `commit_batch` gets a list of items and returns one result per item, or
    raises, in which case every item of that batch gets the exception.
    """

    def __init__(
        self,
        commit_batch: Callable[[list[Item]], Awaitable[list[Result]]],
        *,
        max_batch: int,
    ) -> None:
        self._commit_batch = commit_batch
        self._max_batch = max_batch
        # A list, not an asyncio.Queue: the writer takes a whole batch at once,
        # and a queue's bookkeeping per item costs more than the rest of a submit.
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        # Set while the writer waits for work; the next submit completes it.
        self._work_arrived: asyncio.Future[None] | None = None
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
        while True:
            if not self._waiting:
                if self._closing:
                    return
                self._work_arrived = asyncio.get_running_loop().create_future()
                await self._work_arrived
                self._work_arrived = None
                continue
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
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
