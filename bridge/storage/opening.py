"""Opening the storage the config names: the one place that picks an engine."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..config import StorageConfig
from .interface import Storage
from .sqlite import SqliteStorage

__all__ = ["open_storage"]


async def open_storage(
    settings: StorageConfig,
    *,
    clock: Callable[[], float] = time.time,
    before_migrating: Callable[[int, int], None] | None = None,
) -> Storage:
    """The daemon's storage, its schema brought up to date, its background work running."""
    return await SqliteStorage.open(
        settings.database_path,
        busy_timeout_ms=settings.busy_timeout_ms,
        commit_batch_max=settings.commit_batch_max,
        cipher=settings.cipher(),
        background_checkpoints=True,
        before_migrating=before_migrating,
        clock=clock,
    )
