"""What doctor makes of a MySQL or MariaDB server: pure judgements of what it reported.

doctor reads the server's version and a few variables in a session set up
like the bridge's own (`storage/mysql_server.py`); each function here says
whether one of them is fine, worth a warning, or a problem, and how to fix
it. The bridge relies on three things besides a recent enough server: a
commit that returned is on disk (`innodb_flush_log_at_trx_commit = 1`), its
sessions run READ COMMITTED, and a binary log, if any, that can record what
READ COMMITTED writes (row-based: InnoDB refuses such writes in STATEMENT
format).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "MINIMUM_VERSIONS",
    "ServerVersion",
    "Verdict",
    "explain_connect_failure",
    "isolation_variable",
    "judge_binary_log",
    "judge_binary_log_sync",
    "judge_flush_log",
    "judge_isolation",
    "judge_schema",
    "judge_version",
    "parse_server_version",
]

Level = Literal["ok", "warning", "problem"]

# The oldest servers the MySQL engine is written for: the first with the
# `FOR UPDATE SKIP LOCKED` that claims are made with.
MINIMUM_VERSIONS = {"MySQL": (8, 0), "MariaDB": (10, 6)}
# MariaDB renamed tx_isolation to transaction_isolation in 11.1; MySQL 8.0
# has only the new name (5.7 had both).
_MARIADB_NEW_ISOLATION_NAME = (11, 1)
# What the bridge's user needs on its database: its rows, and its own migrations.
_GRANTS = "SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, REFERENCES"
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True, slots=True)
class Verdict:
    """One judgement: its level, what was found, and (unless ok) what to do."""

    level: Level
    message: str
    fix: str = ""


def _ok(message: str) -> Verdict:
    return Verdict("ok", message)


@dataclass(frozen=True, slots=True)
class ServerVersion:
    product: Literal["MySQL", "MariaDB"]
    number: tuple[int, int, int]

    def __str__(self) -> str:
        return f"{self.product} {'.'.join(str(part) for part in self.number)}"


def parse_server_version(version: str) -> ServerVersion | None:
    """`@@version` as the product and its number: "10.11.6-MariaDB-0+deb12u1", "8.0.36-28"."""
    product: Literal["MySQL", "MariaDB"] = "MariaDB" if "mariadb" in version.lower() else "MySQL"
    # Replication and proxies may prefix MariaDB's version with "5.5.5-".
    text = version.removeprefix("5.5.5-") if product == "MariaDB" else version
    match = _VERSION.match(text)
    if match is None:
        return None
    major, minor, patch = match.groups()
    return ServerVersion(product, (int(major), int(minor), int(patch or 0)))


def judge_version(version: str) -> Verdict:
    parsed = parse_server_version(version)
    if parsed is None:
        return Verdict(
            "problem",
            f"the server reports a version this program cannot read ({version!r})",
            "use MySQL 8.0 or newer, or MariaDB 10.6 or newer",
        )
    minimum = MINIMUM_VERSIONS[parsed.product]
    if parsed.number[:2] < minimum:
        wanted = f"{parsed.product} {minimum[0]}.{minimum[1]}"
        return Verdict(
            "problem",
            f"{parsed} is older than {wanted}, the oldest the bridge works with",
            f"upgrade the server to {wanted} or newer",
        )
    return _ok(f"connects; {parsed}")


def isolation_variable(version: str) -> str:
    """The variable holding a session's isolation level on this server."""
    parsed = parse_server_version(version)
    if parsed is None:
        return "transaction_isolation"
    renamed = _MARIADB_NEW_ISOLATION_NAME if parsed.product == "MariaDB" else (8, 0)
    return "transaction_isolation" if parsed.number[:2] >= renamed else "tx_isolation"


def _switch(value: object) -> str:
    """A server variable's value as text: 1, "1", "ON" and b"ON" alike."""
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    return str(value).strip().upper()


def judge_flush_log(value: object) -> Verdict:
    """`innodb_flush_log_at_trx_commit`: only 1 puts every commit on disk before it returns."""
    if value is None:
        return Verdict(
            "warning",
            "the server has no innodb_flush_log_at_trx_commit: whether a commit that "
            "returned is on disk cannot be told",
            "use MySQL or MariaDB with InnoDB, the engine the bridge's tables are made for",
        )
    if _switch(value) == "1":
        return _ok("innodb_flush_log_at_trx_commit = 1: a commit is on disk when it returns")
    return Verdict(
        "warning",
        f"innodb_flush_log_at_trx_commit = {_switch(value)}: a commit could be lost on a "
        "crash, and with it a callback Cryptum was told was stored",
        "set innodb_flush_log_at_trx_commit = 1 in the server's configuration "
        "(SET PERSIST on MySQL 8, or [mysqld] in my.cnf)",
    )


def judge_isolation(value: object, variable: str) -> Verdict:
    """The isolation level a session of the bridge got (it asks for READ COMMITTED)."""
    if value is None:
        return Verdict(
            "warning",
            f"the server has no {variable}: the isolation level of the bridge's sessions "
            "cannot be told",
            "make sure the server honours SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        )
    level = _switch(value).replace(" ", "-")
    if level == "READ-COMMITTED":
        return _ok("the bridge's sessions run READ COMMITTED")
    return Verdict(
        "problem",
        f"a session of the bridge runs {level} ({variable}), not READ COMMITTED",
        "the bridge asks for READ COMMITTED when it connects: check that nothing between "
        "it and the server (a proxy, an init_connect) sets another level",
    )


def judge_binary_log(log_bin: object, binlog_format: object) -> Verdict:
    """A binary log in STATEMENT format cannot record READ COMMITTED writes: InnoDB refuses them."""
    if _switch(log_bin) not in ("1", "ON"):
        return _ok("binary log off")
    fmt = "ROW" if binlog_format is None else _switch(binlog_format)
    if fmt == "STATEMENT":
        return Verdict(
            "problem",
            "the binary log is on with binlog_format = STATEMENT: InnoDB refuses every write "
            "of a READ COMMITTED session in that format",
            "set binlog_format = ROW (or MIXED) in the server's configuration and restart it",
        )
    return _ok(f"binary log on, binlog_format = {fmt}")


def judge_binary_log_sync(log_bin: object, sync_binlog: object) -> Verdict | None:
    """With a binary log, a commit survives a crash only if its log entry reached the disk.

    A transaction whose entry was lost is rolled back when the server
    recovers, even though its COMMIT returned. None without a binary log.
    """
    if _switch(log_bin) not in ("1", "ON") or sync_binlog is None:
        return None
    if _switch(sync_binlog) == "1":
        return _ok("sync_binlog = 1: the binary log is on disk at every commit")
    return Verdict(
        "warning",
        f"sync_binlog = {_switch(sync_binlog)}: a commit could be lost on a crash (the server "
        "rolls back what its binary log lost), and with it a callback Cryptum was told was "
        "stored",
        "set sync_binlog = 1 in the server's configuration",
    )


def judge_schema(version: int, latest: int) -> Verdict:
    """The schema version the database is at, against this program's."""
    if version == 0:
        return _ok("schema not created yet; serve creates it")
    if version > latest:
        return Verdict(
            "problem",
            f"schema version {version}, newer than this program's {latest}",
            "upgrade cryptum-bridge on this machine to the version the other nodes run",
        )
    if version < latest:
        return Verdict(
            "warning",
            f"schema version {version} of {latest}: older than this program",
            "restart the daemon with this version (serve brings the schema up to date); "
            "admin commands refuse the database until then",
        )
    return _ok(f"schema version {version} of {latest}")


def explain_connect_failure(
    code: int | None, cause: str, detail: str, *, where: str, user: str, database: str
) -> Verdict:
    """Why the server could not be reached or refused the bridge, and what to do.

    `code` is the server's or the client's error number, `cause` what lay
    under a failed connection ("refused", "unresolved", "timeout", "tls",
    "network", or "server" for the server's own refusal), `detail` the
    message, which never holds the password.
    """
    grant = (
        f"GRANT {_GRANTS} ON {database}.* TO '{user}'@'<this machine>'"
        ' (docs/scaling.md, "Setting it up")'
    )
    if code == 1045:
        return Verdict(
            "problem",
            f"the server refused the password: {detail}",
            f"check that storage.password (or password_file) holds {user}'s password, and "
            f"that {user} may connect from this machine (CREATE USER '{user}'@'<this "
            "machine>' IDENTIFIED BY …)",
        )
    if code == 1044:
        return Verdict("problem", f"{user} may not use {database}: {detail}", f"run {grant}")
    if code == 1049:
        return Verdict(
            "problem",
            f"the database {database} does not exist",
            f"as the server's administrator: CREATE DATABASE {database} CHARACTER SET utf8mb4 "
            f"COLLATE utf8mb4_bin; {grant}",
        )
    if code == 1130:
        return Verdict(
            "problem",
            f"the server does not let {user} connect from this machine: {detail}",
            f"create {user} for this machine's address, and {grant}",
        )
    if cause != "server":
        return _unreachable(cause, detail, where)
    return Verdict(
        "problem",
        f"the server refused the connection: {detail}",
        "check storage.url and the server's log",
    )


def _unreachable(cause: str, detail: str, where: str) -> Verdict:
    if cause == "refused":
        return Verdict(
            "problem",
            f"connection refused: nothing listens at {where}",
            "is the MySQL server running, listening on the network (bind-address), and are "
            "the host and port in storage.url right?",
        )
    if cause == "unresolved":
        return Verdict(
            "problem",
            f"the host name of {where} does not resolve ({detail})",
            "check the host in storage.url, and this machine's DNS (/etc/resolv.conf, /etc/hosts)",
        )
    if cause == "timeout":
        return Verdict(
            "problem",
            f"no answer from {where}",
            f"check firewalls between this machine and {where}, and that the server runs",
        )
    if cause == "tls":
        return Verdict(
            "problem",
            f"TLS with {where} failed: {detail}",
            "check that the server has TLS set up, and that storage.tls_ca_file names the CA "
            "that signed its certificate (its name must match the host in storage.url)",
        )
    return Verdict(
        "problem",
        f"cannot connect to {where}: {detail}",
        f"check storage.url and the network between this machine and {where}",
    )
