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
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future[Result]] | None] = asyncio.Queue()
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
        self._queue.put_nowait((item, future))
        return await future

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is None:
            return
        self._closing = True
        self._queue.put_nowait(None)
        await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            entry = await self._queue.get()
            if entry is None:
                return
            batch = [entry]
            stop = False
            while len(batch) < self._max_batch and not self._queue.empty():
                queued = self._queue.get_nowait()
                if queued is None:
                    stop = True
                    break
                batch.append(queued)
            await self._commit(batch)
            if stop:
                return

    async def _commit(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            results = await self._commit_batch([item for item, _ in batch])
        except Exception as error:  # every waiter learns of the failure, the writer lives on
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
