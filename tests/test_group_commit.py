"""The group committer on its own: batching, failure fan-out, orderly shutdown."""

from __future__ import annotations

import asyncio

import pytest

from bridge.storage.group_commit import GroupCommitter, WriterClosed


async def test_items_queued_during_a_commit_share_the_next_one() -> None:
    batches: list[list[int]] = []
    release = asyncio.Event()

    async def commit(items: list[int]) -> list[int]:
        batches.append(items)
        if len(batches) == 1:
            await release.wait()  # the first commit is "in flight" while others queue
        return [item * 10 for item in items]

    writer: GroupCommitter[int, int] = GroupCommitter(commit, max_batch=100)
    writer.start()
    first = asyncio.create_task(writer.submit(0))
    await asyncio.sleep(0)
    others = [asyncio.create_task(writer.submit(n)) for n in range(1, 6)]
    await asyncio.sleep(0)
    release.set()
    assert await first == 0
    assert [await task for task in others] == [10, 20, 30, 40, 50]
    assert batches == [[0], [1, 2, 3, 4, 5]]
    await writer.close()


async def test_batches_are_capped() -> None:
    sizes: list[int] = []

    async def commit(items: list[int]) -> list[None]:
        sizes.append(len(items))
        return [None] * len(items)

    writer: GroupCommitter[int, None] = GroupCommitter(commit, max_batch=3)
    writer.start()
    await asyncio.gather(*(writer.submit(n) for n in range(7)))
    await writer.close()
    assert sum(sizes) == 7
    assert max(sizes) <= 3
    assert (writer.batches, writer.items) == (len(sizes), 7)  # how well commits are shared


async def test_a_failed_batch_fails_each_of_its_items_and_the_writer_goes_on() -> None:
    calls = 0

    async def commit(items: list[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk full")
        return items

    writer: GroupCommitter[str, str] = GroupCommitter(commit, max_batch=10)
    writer.start()
    results = await asyncio.gather(writer.submit("a"), writer.submit("b"), return_exceptions=True)
    assert all(isinstance(result, OSError) for result in results)
    assert await writer.submit("c") == "c"
    await writer.close()


async def test_close_commits_what_is_queued_then_refuses_more() -> None:
    committed: list[int] = []

    async def commit(items: list[int]) -> list[None]:
        committed.extend(items)
        return [None] * len(items)

    writer: GroupCommitter[int, None] = GroupCommitter(commit, max_batch=2)
    writer.start()
    pending = [asyncio.create_task(writer.submit(n)) for n in range(5)]
    await asyncio.sleep(0)
    await writer.close()
    await asyncio.gather(*pending)
    assert committed == [0, 1, 2, 3, 4]
    with pytest.raises(WriterClosed):
        await writer.submit(9)


async def test_a_batch_answered_with_too_few_results_fails_every_item() -> None:
    calls = 0

    async def commit(items: list[str]) -> list[str]:
        nonlocal calls
        calls += 1
        return items[:-1] if calls == 1 else items

    writer: GroupCommitter[str, str] = GroupCommitter(commit, max_batch=10)
    writer.start()
    results = await asyncio.gather(writer.submit("a"), writer.submit("b"), return_exceptions=True)
    assert all(isinstance(result, RuntimeError) for result in results)
    assert str(results[0]) == "1 results for a batch of 2"
    assert await writer.submit("c") == "c"  # the writer goes on
    await writer.close()


async def test_a_writer_not_started_takes_nothing() -> None:
    async def commit(items: list[int]) -> list[int]:
        return items

    writer: GroupCommitter[int, int] = GroupCommitter(commit, max_batch=10)
    with pytest.raises(WriterClosed):
        await asyncio.wait_for(writer.submit(1), timeout=5)


async def test_an_item_submitted_before_the_writer_first_runs_is_committed() -> None:
    async def commit(items: list[int]) -> list[int]:
        return [item + 1 for item in items]

    writer: GroupCommitter[int, int] = GroupCommitter(commit, max_batch=10)
    writer.start()
    # Awaited in this task: submit runs before the writer's task has taken a step.
    assert await writer.submit(1) == 2
    await writer.close()
    await writer.close()  # a second close finds nothing to do
    with pytest.raises(WriterClosed):
        await writer.submit(3)


# Batches in flight together (SQLite's writer keeps the next batch queued behind the fsync).


class HeldCommits:
    """A `commit_batch` whose batches end only when the test lets each one go."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self._releases: list[asyncio.Event] = []

    async def __call__(self, items: list[int]) -> list[int]:
        release = asyncio.Event()
        self.batches.append(items)
        self._releases.append(release)
        await release.wait()
        if any(item == 13 for item in items):
            raise OSError("disk full")
        return [item * 10 for item in items]

    def release(self, batch_index: int) -> None:
        self._releases[batch_index].set()


async def settle() -> None:
    """Let every task that can run do so."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_with_two_in_flight_the_next_batch_starts_while_one_commits() -> None:
    commits = HeldCommits()
    writer: GroupCommitter[int, int] = GroupCommitter(commits, max_batch=100, max_in_flight=2)
    writer.start()
    first = asyncio.create_task(writer.submit(0))
    await settle()
    second = asyncio.create_task(writer.submit(1))
    await settle()
    assert commits.batches == [[0], [1]]  # the second started with the first still committing
    later = [asyncio.create_task(writer.submit(n)) for n in (2, 3)]
    await settle()
    assert commits.batches == [[0], [1]]  # no third place: these wait together
    commits.release(0)
    assert await first == 0
    await settle()
    assert commits.batches == [[0], [1], [2, 3]]
    commits.release(1)
    commits.release(2)
    assert [await second, *[await task for task in later]] == [10, 20, 30]
    await writer.close()


async def test_by_default_one_batch_commits_at_a_time() -> None:
    commits = HeldCommits()
    writer: GroupCommitter[int, int] = GroupCommitter(commits, max_batch=100)
    writer.start()
    first = asyncio.create_task(writer.submit(0))
    await settle()
    second = asyncio.create_task(writer.submit(1))
    await settle()
    assert commits.batches == [[0]]
    commits.release(0)
    assert await first == 0
    await settle()
    assert commits.batches == [[0], [1]]
    commits.release(1)
    assert await second == 10
    await writer.close()


async def test_batches_in_flight_answer_their_own_items_whichever_ends_first() -> None:
    commits = HeldCommits()
    writer: GroupCommitter[int, int] = GroupCommitter(commits, max_batch=100, max_in_flight=2)
    writer.start()
    first = asyncio.create_task(writer.submit(1))
    await settle()
    second = [asyncio.create_task(writer.submit(n)) for n in (2, 13)]
    await settle()
    commits.release(1)  # the later batch ends first, and fails
    results = await asyncio.gather(*second, return_exceptions=True)
    assert all(isinstance(result, OSError) for result in results)
    assert not first.done()
    commits.release(0)
    assert await first == 10  # the other batch in flight is not touched by the failure
    await writer.close()


async def test_a_batch_that_must_commit_alone_waits_for_the_others_and_holds_back_the_next() -> (
    None
):
    commits = HeldCommits()
    writer: GroupCommitter[int, int] = GroupCommitter(
        commits, max_batch=100, max_in_flight=2, alone=lambda item: item < 0
    )
    writer.start()
    first = asyncio.create_task(writer.submit(0))
    await settle()
    lone = asyncio.create_task(writer.submit(-1))
    await settle()
    assert commits.batches == [[0]]  # a place is free, but not for a batch that goes alone
    commits.release(0)
    assert await first == 0
    await settle()
    assert commits.batches == [[0], [-1]]
    after = asyncio.create_task(writer.submit(5))
    await settle()
    assert commits.batches == [[0], [-1]]  # nothing joins a batch committing alone
    commits.release(1)
    assert await lone == -10
    await settle()
    assert commits.batches == [[0], [-1], [5]]
    commits.release(2)
    assert await after == 50
    await writer.close()


async def test_close_waits_for_every_batch_in_flight() -> None:
    commits = HeldCommits()
    writer: GroupCommitter[int, int] = GroupCommitter(commits, max_batch=1, max_in_flight=2)
    writer.start()
    pending = [asyncio.create_task(writer.submit(n)) for n in range(3)]
    await settle()
    closing = asyncio.create_task(writer.close())
    await settle()
    assert commits.batches == [[0], [1]]
    commits.release(1)
    commits.release(0)
    await settle()
    assert not closing.done()  # the third batch is still to commit
    commits.release(2)
    await closing
    assert [task.result() for task in pending] == [0, 10, 20]
    with pytest.raises(WriterClosed):
        await writer.submit(4)


def test_at_least_one_batch_must_be_allowed_in_flight() -> None:
    async def commit(items: list[int]) -> list[int]:
        return items

    with pytest.raises(ValueError, match=r"^max_in_flight must be at least 1$"):
        GroupCommitter(commit, max_batch=10, max_in_flight=0)
