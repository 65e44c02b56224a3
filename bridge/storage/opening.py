"""Opening the storage the config names: the one place that picks an engine."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..config import StorageConfig
from .interface import Storage
from .sqlite import SqliteStorage
from .sqlite_lock import InstanceLock

__all__ = ["open_storage"]


async def open_storage(
    settings: StorageConfig,
    *,
    serve: bool = True,
    clock: Callable[[], float] = time.time,
    before_migrating: Callable[[int, int], None] | None = None,
) -> Storage:
    """The storage `settings` name, its schema up to date.

    `serve` is for the daemon: it creates or migrates the schema, runs the
    engine's background work and, on SQLite, takes the one-`serve`-per-file
    lock. Without it (admin commands) the storage must exist and be up to
    date, and nothing runs on its own.
    """
    if settings.engine == "mysql":
        # Imported here: a SQLite install never loads the MySQL driver.
        from .mysql import MysqlStorage

        return await MysqlStorage.open(
            settings, create=serve, before_migrating=before_migrating, clock=clock
        )
    path = settings.database_path
    lock = InstanceLock(path) if serve else None
    if lock is not None:
        lock.acquire()
    try:
        storage = await SqliteStorage.open(
            path,
            busy_timeout_ms=settings.busy_timeout_ms,
            commit_batch_max=settings.commit_batch_max,
            cipher=settings.cipher(),
            create=serve,
            background_checkpoints=serve,
            before_migrating=before_migrating,
            clock=clock,
        )
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    if lock is not None:
        storage.hold_until_closed(lock)
    return storage
