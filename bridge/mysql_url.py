"""`mysql://user@host:port/database`: where a MySQL or MariaDB storage lives.

Pure parsing, shared by the config and `migrate-storage --to`. The password
never goes in the URL: a URL is shown in summaries, logs and shell history,
so it comes from `storage.password_file` or `storage.password = "env:NAME"`
like every other secret. A server on this machine's socket is
`mysql://user@localhost/database?socket=/run/mysqld/mysqld.sock`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["DEFAULT_PORT", "MysqlTarget", "parse_mysql_url"]

DEFAULT_PORT = 3306

# MySQL's own limits: a database name of up to 64 characters; here only the
# characters that need no quoting anywhere, so a name is never an injection.
_DATABASE = re.compile(r"[A-Za-z0-9_$]{1,64}")
_USER_MAX = 80  # MariaDB's limit (MySQL 8 allows 32)


@dataclass(frozen=True, slots=True)
class MysqlTarget:
    """A parsed storage URL: who connects, to which server, to which database."""

    user: str
    host: str
    port: int
    database: str
    socket: str | None = None

    def display(self) -> str:
        """The URL as written back (it has no secret to mask)."""
        where = f"{self.host}:{self.port}" if self.socket is None else self.host
        query = "" if self.socket is None else f"?socket={self.socket}"
        return f"mysql://{self.user}@{where}/{self.database}{query}"

    @property
    def is_local(self) -> bool:
        """On this machine: a socket, or a loopback address, where TLS adds nothing."""
        return self.socket is not None or self.host in ("localhost", "127.0.0.1", "::1")


def parse_mysql_url(url: str) -> MysqlTarget:
    """Parse a storage URL; raises ValueError saying what is wrong (never echoing a password)."""
    parts = urlsplit(url)
    if parts.scheme != "mysql":
        raise ValueError('must start with "mysql://" (for SQLite, set storage.path instead)')
    if parts.password is not None:
        raise ValueError(
            'must not hold a password: set storage.password_file or storage.password = "env:NAME"'
        )
    if not parts.username:
        raise ValueError("must name the user, as in mysql://bridge@db.internal:3306/bridge")
    user = unquote(parts.username)
    if len(user) > _USER_MAX:
        raise ValueError(f"the user name is longer than {_USER_MAX} characters")
    if not parts.hostname:
        raise ValueError("must name the server, as in mysql://bridge@db.internal:3306/bridge")
    try:
        port = parts.port if parts.port is not None else DEFAULT_PORT
    except ValueError:
        raise ValueError("the port must be a number from 1 to 65535") from None
    if port == 0:
        raise ValueError("the port must be a number from 1 to 65535")
    database = parts.path.removeprefix("/")
    if not _DATABASE.fullmatch(database):
        raise ValueError(
            "must end in the database's name (letters, digits, _ or $; up to 64), "
            "as in mysql://bridge@db.internal:3306/bridge"
        )
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    return MysqlTarget(
        user=user,
        host=parts.hostname,
        port=port,
        database=database,
        socket=_socket_option(parts.query),
    )


def _socket_option(query: str) -> str | None:
    try:
        options = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ValueError("the query must be ?socket=/path/to/mysqld.sock") from None
    unknown = sorted(set(options) - {"socket"})
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r}: the only one is ?socket=/path")
    sockets = options.get("socket", [])
    if len(sockets) > 1:
        raise ValueError("socket is given more than once")
    if not sockets:
        return None
    if not sockets[0].startswith("/"):
        raise ValueError("socket must be an absolute path, as in ?socket=/run/mysqld/mysqld.sock")
    return sockets[0]
