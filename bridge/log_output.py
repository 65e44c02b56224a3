"""Where log lines go: one write per turn of the event loop instead of one per line.

Under load the daemon logs a line per callback. Written one by one, each
line is a system call made by the event loop's thread, and every system
call lets go of the GIL: SQLite's thread, waiting for it, takes it, and the
event loop then waits for it back. Lines the event loop's thread writes
during one turn of the loop are held and go out together at the end of
that turn, a few milliseconds at most. Lines from any other thread, or from
no event loop at all (the admin commands), go out at once, after whatever
is held, so the order of lines is kept.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TextIO

__all__ = ["LoopBatchedStream"]


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class LoopBatchedStream:
    """A text stream for log lines in front of `stream`; see the module's docstring.

    structlog's and logging's writers flush after every line: `flush` keeps
    lines held for the loop's turn, and writes out held lines only when
    called from outside the loop. `write_held` writes them out whatever the
    caller; call it before the process exits.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._held: list[str] = []
        self._lock = threading.Lock()
        # The loop a write of held lines is scheduled on. A loop closed before
        # running it leaves it set; another loop then schedules its own.
        self._scheduled_on: asyncio.AbstractEventLoop | None = None

    def write(self, text: str) -> int:
        loop = _running_loop()
        with self._lock:
            self._held.append(text)
            if loop is None:
                self._write_out()
            elif self._scheduled_on is not loop:
                self._scheduled_on = loop
                loop.call_soon(self.write_held)
        return len(text)

    def flush(self) -> None:
        if _running_loop() is None:
            self.write_held()

    def write_held(self) -> None:
        with self._lock:
            self._scheduled_on = None
            self._write_out()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def _write_out(self) -> None:
        if self._held:
            text = "".join(self._held)
            self._held.clear()
            self._stream.write(text)
        self._stream.flush()
