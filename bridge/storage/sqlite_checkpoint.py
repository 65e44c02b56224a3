"""WAL checkpoints off the commit path.

In WAL mode every commit appends pages to the `-wal` file, and a checkpoint
copies them back into the database. Left to SQLite, the connection whose
commit pushes the WAL over a threshold runs the checkpoint there and then,
and every callback waiting on that commit waits for it too: with a large
database, where each callback touches pages all over the dedupe index, that
is tens of milliseconds of random writes and an fsync. Here a connection of
its own, in its own thread, checkpoints a little at a time in PASSIVE mode,
which never blocks the writer; the writer's automatic checkpoint stays as a
backstop with a high threshold (`WRITER_CHECKPOINT_PAGES`).
"""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import structlog

from ..background import BackgroundLoop

__all__ = ["WRITER_CHECKPOINT_PAGES", "WalCheckpointer"]

log = structlog.get_logger("bridge.storage")

# The writer checkpoints on its own only when the WAL holds this many pages
# (40 MiB of 4 KiB pages): when the background checkpoints cannot keep up.
WRITER_CHECKPOINT_PAGES = 10_000

# Checked this often while commits keep coming, and less often when idle.
BUSY_INTERVAL_SECONDS = 0.1
IDLE_INTERVAL_SECONDS = 1.0


class WalCheckpointer:
    """Copies committed WAL pages into the database in the background."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection
        self._previous_size = -1
        # A full or failing disk also fails the commits, which the callbacks
        # and /readyz report; a failed checkpoint is only retried.
        self.loop = BackgroundLoop(
            "checkpoint", self._step, failed_event="storage.checkpoint_failed"
        )

    @classmethod
    async def open(cls, path: Path, *, busy_timeout_ms: int) -> WalCheckpointer:
        connection = await aiosqlite.connect(path, isolation_level=None)
        try:
            # The checkpoint syncs the WAL before copying and the database
            # after, so a crash midway loses nothing.
            await connection.execute("PRAGMA synchronous = FULL")
            await connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        except BaseException:
            await connection.close()
            raise
        checkpointer = cls(connection)
        checkpointer.loop.start()
        return checkpointer

    async def checkpoint(self) -> int:
        """One PASSIVE checkpoint; returns how many pages the WAL holds."""
        rows = await self._connection.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)")
        _busy, pages_in_wal, _pages_copied = next(iter(rows))
        return int(pages_in_wal)

    async def _step(self) -> float:
        size = await self.checkpoint()
        # A WAL that changed since the last pass means commits are coming.
        busy = size != self._previous_size
        self._previous_size = size
        return BUSY_INTERVAL_SECONDS if busy else IDLE_INTERVAL_SECONDS

    async def close(self) -> None:
        await self.loop.stop()
        await self._connection.close()
