"""One `serve` per SQLite database: an advisory lock on a file beside it.

Two daemons on one database would each release the other's leases at start
and deliver the same orders side by side; the lock makes the second one stop
with a clear message instead. Admin commands do not take it. (On MySQL,
nodes share the database by design and coordinate through leases.)
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import StorageError

__all__ = ["InstanceLock"]


class InstanceLock:
    def __init__(self, database_path: Path) -> None:
        self.path = database_path.with_name(database_path.name + ".lock")
        self._descriptor: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
        except OSError as error:
            raise StorageError(f"cannot create {self.path}: {error.strerror or error}") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise StorageError(
                f"another cryptum-bridge serve is using this database ({self.path} is locked)"
            ) from None
        self._descriptor = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing drops the lock
            self._descriptor = None
