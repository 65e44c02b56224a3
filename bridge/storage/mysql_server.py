"""Asking a MySQL or MariaDB server what it is, for doctor: one session set up like the bridge's.

`server_session(settings)` connects exactly as the engine's pool does
(`connect_options`: the same user, TLS settings, SQL mode and READ COMMITTED
session), so what it reads is what a session of the bridge gets. It reads
server variables and the schema version, and changes nothing. A connection
that fails is a `ServerUnreachable` naming the error number and what lay
under it (a refused port, a name that does not resolve, TLS), for doctor to
explain.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncmy
from asyncmy.errors import MySQLError

from ..config import StorageConfig
from .errors import StorageError
from .mysql_connection import connect_options, error_code
from .mysql_schema import read_version

__all__ = ["ServerSession", "ServerUnreachable", "server_session"]

_UNKNOWN_VARIABLE = 1193
_VARIABLE_NAME = re.compile(r"[a-z_]{1,64}")


class ServerUnreachable(StorageError):
    """No session could be opened: `code` the error number, `cause` what lay under it.

    `cause` is "refused", "unresolved", "timeout", "tls", "network", or
    "server" when the server itself refused (a password, a database);
    `detail` is the message, which names the user but never the password.
    """

    def __init__(self, code: int | None, cause: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.cause = cause
        self.detail = detail


class ServerSession:
    """One open session: server variables and the schema version, read only."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def variable(self, name: str) -> Any:
        """The session's value of `@@name`, or None where the server has no such variable."""
        if not _VARIABLE_NAME.fullmatch(name):
            raise ValueError(f"not a server variable name: {name!r}")
        async with self._connection.cursor() as cursor:
            try:
                # A checked name: safe to write into the statement.
                await cursor.execute(f"SELECT @@{name}")
            except MySQLError as error:
                if error_code(error) == _UNKNOWN_VARIABLE:
                    return None
                raise
            (value,) = await cursor.fetchone()
            return value

    async def schema_version(self) -> int:
        """The bridge's schema version in the database; 0 while it has none."""
        async with self._connection.cursor() as cursor:
            return await read_version(cursor)


@asynccontextmanager
async def server_session(settings: StorageConfig) -> AsyncIterator[ServerSession]:
    """A session like the bridge's on the configured server; `ServerUnreachable` if none opens."""
    try:
        connection = await asyncmy.connect(**connect_options(settings))
    except MySQLError as error:
        raise _unreachable(error, error.__cause__) from None
    except OSError as error:
        raise _unreachable(error, error) from None
    try:
        yield ServerSession(connection)
    finally:
        connection.close()


def _unreachable(error: BaseException, under: BaseException | None) -> ServerUnreachable:
    args = error.args
    detail = str(args[1]) if len(args) > 1 and isinstance(args[0], int) else str(error)
    return ServerUnreachable(error_code(error), _cause(under), _plain(under) or detail)


def _cause(under: BaseException | None) -> str:
    """What lay under a failed connection; "server" when the server answered with a refusal."""
    if isinstance(under, ssl.SSLError):
        return "tls"
    if isinstance(under, socket.gaierror):
        return "unresolved"
    if isinstance(under, ConnectionRefusedError):
        return "refused"
    if isinstance(under, TimeoutError):
        return "timeout"
    if isinstance(under, OSError):
        return "network"
    return "server"


def _plain(under: BaseException | None) -> str:
    """The operating system's or TLS library's own words for what failed."""
    if isinstance(under, ssl.SSLCertVerificationError):
        return str(under.verify_message or under.reason or under)
    if isinstance(under, ssl.SSLError):
        return str(under.reason or under)
    if isinstance(under, OSError):
        return str(under.strerror or under)
    return ""
