"""Log lines written on the event loop go out once per turn of the loop, in order, never lost."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading

import pytest
import structlog

from bridge.config import LoggingConfig
from bridge.log_output import LoopBatchedStream
from bridge.log_setup import configure_logging

from support import SESSION_LOGS


class RecordingStream(io.StringIO):
    """A stream that remembers each write it was given, to count system calls."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def write_line(stream: LoopBatchedStream, text: str) -> None:
    # What structlog's WriteLogger and logging's StreamHandler do for each line.
    stream.write(text + "\n")
    stream.flush()


async def test_lines_of_one_loop_turn_go_out_together_after_it() -> None:
    target = RecordingStream()
    stream = LoopBatchedStream(target)
    for number in range(3):
        write_line(stream, f"line {number}")
    assert target.writes == []  # held until the turn ends
    await asyncio.sleep(0)
    assert target.writes == ["line 0\nline 1\nline 2\n"]
    write_line(stream, "line 3")
    await asyncio.sleep(0)
    assert target.writes == ["line 0\nline 1\nline 2\n", "line 3\n"]


def test_without_an_event_loop_each_line_goes_out_at_once() -> None:
    target = RecordingStream()
    stream = LoopBatchedStream(target)
    write_line(stream, "first")
    assert target.getvalue() == "first\n"
    write_line(stream, "second")
    assert target.writes == ["first\n", "second\n"]


async def test_a_line_from_another_thread_follows_the_held_ones() -> None:
    target = RecordingStream()
    stream = LoopBatchedStream(target)
    write_line(stream, "held on the loop")
    worker = threading.Thread(target=write_line, args=(stream, "from a thread"))
    worker.start()
    worker.join()
    assert target.getvalue() == "held on the loop\nfrom a thread\n"
    await asyncio.sleep(0)  # the scheduled write finds nothing more to write
    assert target.getvalue() == "held on the loop\nfrom a thread\n"


async def test_write_held_writes_at_once_and_nothing_twice() -> None:
    target = RecordingStream()
    stream = LoopBatchedStream(target)
    write_line(stream, "last words")
    stream.write_held()  # as at exit
    assert target.getvalue() == "last words\n"
    await asyncio.sleep(0)
    assert target.getvalue() == "last words\n"


def test_lines_held_when_a_loop_stops_go_out_with_the_next_loop() -> None:
    target = RecordingStream()
    stream = LoopBatchedStream(target)

    def log_then_stop() -> None:
        write_line(stream, "before the stop")
        # The loop stops at the end of this turn, before the scheduled write runs.
        first.stop()

    first = asyncio.new_event_loop()
    first.call_soon(log_then_stop)
    first.run_forever()
    first.close()
    assert target.getvalue() == ""

    async def log_again() -> None:
        write_line(stream, "on the next loop")
        await asyncio.sleep(0)

    asyncio.run(log_again())
    assert target.getvalue() == "before the stop\non the next loop\n"


@pytest.fixture
def batched() -> RecordingStream:
    target = RecordingStream()
    configure_logging(
        LoggingConfig(format="json", level="info"), stream=target, batch_per_loop_turn=True
    )
    try:
        yield target
    finally:
        configure_logging(LoggingConfig(format="json", level="debug"), stream=SESSION_LOGS)


async def test_structlog_and_library_lines_keep_their_order_in_one_write(
    batched: RecordingStream,
) -> None:
    # Loggers bound here, not a module's, so no cached logger keeps this set-up.
    structlog.get_logger("test").info("first")
    logging.getLogger("aiohttp.server").warning("second")
    structlog.get_logger("test").info("third")
    await asyncio.sleep(0)
    assert len(batched.writes) == 1
    events = [json.loads(line)["event"] for line in batched.getvalue().splitlines()]
    assert events == ["first", "second", "third"]
