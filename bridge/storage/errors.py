"""How storage fails, in terms the rest of the bridge acts on, whatever the engine."""

from __future__ import annotations

__all__ = ["StorageError", "StorageUnavailable"]


class StorageError(Exception):
    """The database cannot be opened or used at all (a start-up or admin error)."""


class StorageUnavailable(Exception):
    """An operation could not be carried out, so nothing of it is on disk.

    `reason` is a short error name of the engine (`sqlite_full`,
    `sqlite_busy`), safe to log and to show in `/readyz`.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
