"""Connections to MySQL or MariaDB: a pool, sessions set up alike, transactions retried.

Every session runs READ COMMITTED: each statement reads what is committed
when it starts, so a claim sees the leases other nodes committed a moment
ago, and InnoDB takes no gap locks that would make concurrent inserts of
different callbacks wait on each other. Strict SQL mode makes a value that
does not fit an error instead of a silent truncation.

A transaction that loses a deadlock or waits too long for a lock is run
again from the start (InnoDB rolled it back whole); so is one whose
connection was lost, on a fresh connection: every transaction here may run
twice, because each one either finds its work done (the dedupe key, a state
it checks) or does the same thing again. What still fails becomes
`StorageUnavailable`, which the HTTP layer answers with 503.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncmy
import structlog
from asyncmy.cursors import Cursor
from asyncmy.errors import MySQLError

from ..config import StorageConfig
from .errors import StorageError, StorageUnavailable

__all__ = [
    "Cursor",
    "MysqlPool",
    "describe_error",
    "error_code",
    "open_pool",
]

log = structlog.get_logger("bridge.storage")

T = TypeVar("T")

# Run by the driver on each new connection (one statement: the driver sends
# `sql_mode` on its own, as its own statement).
SESSION_SETUP = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"
# Sent as written: the driver does not quote it.
SQL_MODE = "'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION'"

# Server error codes (MySQL and MariaDB share them).
DUPLICATE_KEY = 1062
LOCK_WAIT_TIMEOUT = 1205
DEADLOCK = 1213
# Client-side codes for a connection that is gone: refused, lost, closed.
CONNECTION_LOST = frozenset({2003, 2006, 2013, 2055})
_RETRIED = frozenset({DEADLOCK, LOCK_WAIT_TIMEOUT}) | CONNECTION_LOST
# Runs of one transaction before giving up: a deadlock's victim almost always
# succeeds on its second run; a lost connection is retried on a new one.
TRANSACTION_ATTEMPTS = 4
_RETRY_PAUSE_SECONDS = 0.02
CONNECT_TIMEOUT_SECONDS = 5


def error_code(error: BaseException) -> int | None:
    """The server's (or the client's) numeric code of a driver error."""
    args = error.args
    return args[0] if args and isinstance(args[0], int) else None


def describe_error(error: BaseException) -> str:
    """A short name for logs and `/readyz`: the code, never the statement or its values."""
    code = error_code(error)
    if code == DEADLOCK:
        return "mysql_deadlock"
    if code == LOCK_WAIT_TIMEOUT:
        return "mysql_lock_wait_timeout"
    if code in CONNECTION_LOST:
        return "mysql_connection_lost"
    if code is not None:
        return f"mysql_error_{code}"
    return type(error).__name__


def _tls_context(settings: StorageConfig) -> ssl.SSLContext | None:
    if not settings.tls:
        return None
    context = ssl.create_default_context(
        cafile=str(settings.tls_ca_file) if settings.tls_ca_file else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def connect_options(settings: StorageConfig) -> dict[str, Any]:
    """What the driver needs to reach the configured server as the configured user."""
    target = settings.mysql
    password = settings.password.get_secret_value() if settings.password is not None else ""
    location: dict[str, Any] = (
        {"unix_socket": target.socket} if target.socket else {"host": target.host}
    )
    return {
        **location,
        "port": target.port,
        "user": target.user,
        "password": password,
        "db": target.database,
        "charset": "utf8mb4",
        # Every statement then opens a transaction that `transaction` commits:
        # no BEGIN round trip before each one.
        "autocommit": False,
        "init_command": SESSION_SETUP,
        "sql_mode": SQL_MODE,
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "ssl": _tls_context(settings),
    }


class MysqlPool:
    """A pool of set-up sessions, and the one way the engine uses them: `transaction`."""

    def __init__(self, pool: Any, *, describe: str) -> None:
        self._pool = pool
        self.describe = describe

    async def close(self) -> None:
        self._pool.close()
        await self._pool.wait_closed()

    async def transaction(
        self, work: Callable[[Cursor], Awaitable[T]], *, also_retry: frozenset[int] = frozenset()
    ) -> T:
        """Run `work` in one transaction and commit it, retried as the module docstring says.

        `also_retry`: further error codes after which running `work` again is right.
        """
        retried = _RETRIED | also_retry
        for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
            try:
                return await self._run_once(work)
            except MySQLError as error:
                if error_code(error) not in retried or attempt == TRANSACTION_ATTEMPTS:
                    raise StorageUnavailable(describe_error(error)) from None
                log.debug("storage.retried", reason=describe_error(error), attempt=attempt)
                await asyncio.sleep(_RETRY_PAUSE_SECONDS * attempt)
            except OSError as error:
                # The driver's socket failed outside a query (a reset on connect).
                if attempt == TRANSACTION_ATTEMPTS:
                    raise StorageUnavailable("mysql_connection_lost") from error
                await asyncio.sleep(_RETRY_PAUSE_SECONDS * attempt)
        raise AssertionError("unreachable")

    async def read(self, work: Callable[[Cursor], Awaitable[T]]) -> T:
        """Run read-only `work` in a transaction of its own, retried like any other."""
        return await self.transaction(work)

    async def _run_once(self, work: Callable[[Cursor], Awaitable[T]]) -> T:
        async with self._pool.acquire() as connection:
            try:
                async with connection.cursor() as cursor:
                    result = await work(cursor)
                await connection.commit()
                return result
            except BaseException:
                await _abandon(connection)
                raise


async def _abandon(connection: Any) -> None:
    """Roll back a failed transaction; a connection that cannot even do that is closed."""
    try:
        await asyncio.wait_for(connection.rollback(), timeout=CONNECT_TIMEOUT_SECONDS)
    except (MySQLError, OSError, TimeoutError, RuntimeError):
        # Closed, the pool drops it on release and opens a fresh one.
        connection.close()


async def open_pool(settings: StorageConfig) -> MysqlPool:
    """A pool of up to `pool_size` sessions; fails with `StorageError` if none can be opened."""
    describe = settings.describe()
    try:
        pool = await asyncmy.create_pool(
            minsize=1, maxsize=settings.pool_size, pool_recycle=3600, **connect_options(settings)
        )
    except MySQLError as error:
        raise StorageError(f"cannot connect to {describe}: {_safe_message(error)}") from None
    except (OSError, TimeoutError) as error:
        reason = error.strerror or type(error).__name__
        raise StorageError(f"cannot connect to {describe}: {reason}") from None
    return MysqlPool(pool, describe=describe)


def _safe_message(error: MySQLError) -> str:
    """The server's message for a connection refusal: it names the user, never the password."""
    args = error.args
    message = str(args[1]) if len(args) > 1 else type(error).__name__
    return f"{message} ({args[0]})" if args and isinstance(args[0], int) else message
