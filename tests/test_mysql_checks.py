"""doctor's judgements of a MySQL or MariaDB server, row by row (no server needed)."""

from __future__ import annotations

import pytest

from bridge.mysql_checks import (
    ServerVersion,
    Verdict,
    explain_connect_failure,
    isolation_variable,
    judge_binary_log,
    judge_binary_log_sync,
    judge_flush_log,
    judge_isolation,
    judge_schema,
    judge_version,
    parse_server_version,
)

# The texts doctor prints, written out once each: a test compares whole verdicts.
UNREADABLE_VERSION_FIX = "use MySQL 8.0 or newer, or MariaDB 10.6 or newer"
NO_FLUSH_LOG = Verdict(
    "warning",
    "the server has no innodb_flush_log_at_trx_commit: whether a commit that returned is on "
    "disk cannot be told",
    "use MySQL or MariaDB with InnoDB, the engine the bridge's tables are made for",
)
FLUSH_LOG_OK = Verdict(
    "ok", "innodb_flush_log_at_trx_commit = 1: a commit is on disk when it returns"
)
FLUSH_LOG_FIX = (
    "set innodb_flush_log_at_trx_commit = 1 in the server's configuration "
    "(SET PERSIST on MySQL 8, or [mysqld] in my.cnf)"
)
READ_COMMITTED = Verdict("ok", "the bridge's sessions run READ COMMITTED")
ISOLATION_FIX = (
    "the bridge asks for READ COMMITTED when it connects: check that nothing between it and "
    "the server (a proxy, an init_connect) sets another level"
)
STATEMENT_LOG = Verdict(
    "problem",
    "the binary log is on with binlog_format = STATEMENT: InnoDB refuses every write of a "
    "READ COMMITTED session in that format",
    "set binlog_format = ROW (or MIXED) in the server's configuration and restart it",
)
SYNC_BINLOG_OK = Verdict("ok", "sync_binlog = 1: the binary log is on disk at every commit")


def lossy_flush_log(shown: str) -> Verdict:
    return Verdict(
        "warning",
        f"innodb_flush_log_at_trx_commit = {shown}: a commit could be lost on a crash, and "
        "with it a callback Cryptum was told was stored",
        FLUSH_LOG_FIX,
    )


def lossy_sync_binlog(shown: str) -> Verdict:
    return Verdict(
        "warning",
        f"sync_binlog = {shown}: a commit could be lost on a crash (the server rolls back what "
        "its binary log lost), and with it a callback Cryptum was told was stored",
        "set sync_binlog = 1 in the server's configuration",
    )


@pytest.mark.parametrize(
    ("reported", "parsed"),
    [
        ("8.0.36", ServerVersion("MySQL", (8, 0, 36))),
        ("8.0.36-28", ServerVersion("MySQL", (8, 0, 36))),  # Percona
        ("8.0.mysql_aurora.3.05.2", ServerVersion("MySQL", (8, 0, 0))),
        ("8.4.0-log", ServerVersion("MySQL", (8, 4, 0))),
        ("10.11.6-MariaDB-0+deb12u1", ServerVersion("MariaDB", (10, 11, 6))),
        ("5.5.5-10.6.16-MariaDB-log", ServerVersion("MariaDB", (10, 6, 16))),
        ("11.4.2-MariaDB", ServerVersion("MariaDB", (11, 4, 2))),
        ("5.7.44", ServerVersion("MySQL", (5, 7, 44))),
        # MySQL 5.5.5 itself: the prefix is only MariaDB's, never stripped from MySQL.
        ("5.5.5-log", ServerVersion("MySQL", (5, 5, 5))),
        ("5.5.5-8.0.36", ServerVersion("MySQL", (5, 5, 5))),
        ("nonsense", None),
        ("", None),
    ],
)
def test_server_versions_are_read_as_product_and_number(
    reported: str, parsed: ServerVersion | None
) -> None:
    assert parse_server_version(reported) == parsed


def too_old(found: str, wanted: str) -> Verdict:
    return Verdict(
        "problem",
        f"{found} is older than {wanted}, the oldest the bridge works with",
        f"upgrade the server to {wanted} or newer",
    )


@pytest.mark.parametrize(
    ("reported", "verdict"),
    [
        ("8.0.0", Verdict("ok", "connects; MySQL 8.0.0")),
        ("8.4.0", Verdict("ok", "connects; MySQL 8.4.0")),
        ("9.0.1", Verdict("ok", "connects; MySQL 9.0.1")),
        ("7.99.99", too_old("MySQL 7.99.99", "MySQL 8.0")),
        ("5.7.44", too_old("MySQL 5.7.44", "MySQL 8.0")),
        ("5.5.5-log", too_old("MySQL 5.5.5", "MySQL 8.0")),
        ("10.6.0-MariaDB", Verdict("ok", "connects; MariaDB 10.6.0")),
        ("5.5.5-10.6.16-MariaDB-log", Verdict("ok", "connects; MariaDB 10.6.16")),
        ("10.11-MariaDB", Verdict("ok", "connects; MariaDB 10.11.0")),
        ("11.4.2-MariaDB", Verdict("ok", "connects; MariaDB 11.4.2")),
        ("10.5.99-MariaDB", too_old("MariaDB 10.5.99", "MariaDB 10.6")),
        ("5.5.5-10.5.23-MariaDB", too_old("MariaDB 10.5.23", "MariaDB 10.6")),
        (
            "x.y",
            Verdict(
                "problem",
                "the server reports a version this program cannot read ('x.y')",
                UNREADABLE_VERSION_FIX,
            ),
        ),
    ],
)
def test_a_server_older_than_mysql_8_or_mariadb_10_6_is_a_problem(
    reported: str, verdict: Verdict
) -> None:
    assert judge_version(reported) == verdict


@pytest.mark.parametrize(
    ("reported", "variable"),
    [
        ("8.0.0", "transaction_isolation"),
        ("8.0.36", "transaction_isolation"),
        ("5.7.44", "tx_isolation"),
        ("10.6.16-MariaDB", "tx_isolation"),
        ("10.11.6-MariaDB-0+deb12u1", "tx_isolation"),
        ("11.0.99-MariaDB", "tx_isolation"),
        ("11.1.0-MariaDB", "transaction_isolation"),
        ("5.5.5-11.1.0-MariaDB", "transaction_isolation"),
        ("11.4.2-MariaDB", "transaction_isolation"),
        ("unreadable", "transaction_isolation"),
    ],
)
def test_the_isolation_variable_is_the_one_the_server_has(reported: str, variable: str) -> None:
    assert isolation_variable(reported) == variable


@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        (1, FLUSH_LOG_OK),
        ("1", FLUSH_LOG_OK),
        (b"1", FLUSH_LOG_OK),
        (" 1\n", FLUSH_LOG_OK),
        (0, lossy_flush_log("0")),
        (2, lossy_flush_log("2")),
        (b"2", lossy_flush_log("2")),
        ("off", lossy_flush_log("OFF")),
        (None, NO_FLUSH_LOG),
    ],
)
def test_only_flushing_at_every_commit_is_ok(value: object, verdict: Verdict) -> None:
    assert judge_flush_log(value) == verdict


def test_a_value_beyond_ascii_is_shown_replaced_not_raised() -> None:
    # "é" in UTF-8: read as ASCII, each of its two bytes becomes U+FFFD.
    assert judge_flush_log(b"\xc3\xa9") == lossy_flush_log("\ufffd\ufffd")
    assert judge_isolation(b"READ-COMMITT\xc3\x89D", "tx_isolation") == Verdict(
        "problem",
        "a session of the bridge runs READ-COMMITT\ufffd\ufffdD (tx_isolation), not READ COMMITTED",
        ISOLATION_FIX,
    )


@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        ("READ-COMMITTED", READ_COMMITTED),
        ("read-committed", READ_COMMITTED),
        ("READ COMMITTED", READ_COMMITTED),
        (b"READ-COMMITTED", READ_COMMITTED),
        (
            "REPEATABLE-READ",
            Verdict(
                "problem",
                "a session of the bridge runs REPEATABLE-READ (tx_isolation), not READ COMMITTED",
                ISOLATION_FIX,
            ),
        ),
        (
            b"serializable",
            Verdict(
                "problem",
                "a session of the bridge runs SERIALIZABLE (tx_isolation), not READ COMMITTED",
                ISOLATION_FIX,
            ),
        ),
        (
            None,
            Verdict(
                "warning",
                "the server has no tx_isolation: the isolation level of the bridge's sessions "
                "cannot be told",
                "make sure the server honours SET SESSION TRANSACTION ISOLATION LEVEL READ "
                "COMMITTED",
            ),
        ),
    ],
)
def test_a_bridge_session_must_run_read_committed(value: object, verdict: Verdict) -> None:
    assert judge_isolation(value, "tx_isolation") == verdict


def test_the_isolation_verdicts_name_the_variable_read() -> None:
    assert judge_isolation("REPEATABLE READ", "transaction_isolation").message == (
        "a session of the bridge runs REPEATABLE-READ (transaction_isolation), not READ COMMITTED"
    )
    assert judge_isolation(None, "transaction_isolation").message.startswith(
        "the server has no transaction_isolation: "
    )


@pytest.mark.parametrize(
    ("log_bin", "binlog_format", "verdict"),
    [
        (0, "STATEMENT", Verdict("ok", "binary log off")),
        ("OFF", "STATEMENT", Verdict("ok", "binary log off")),
        (None, "STATEMENT", Verdict("ok", "binary log off")),
        (1, "ROW", Verdict("ok", "binary log on, binlog_format = ROW")),
        ("ON", "MIXED", Verdict("ok", "binary log on, binlog_format = MIXED")),
        (1, None, Verdict("ok", "binary log on, binlog_format = ROW")),  # no choice left
        (1, "row", Verdict("ok", "binary log on, binlog_format = ROW")),
        (1, "STATEMENT", STATEMENT_LOG),
        ("1", "STATEMENT", STATEMENT_LOG),
        ("ON", "statement", STATEMENT_LOG),
        (b"ON", b"STATEMENT", STATEMENT_LOG),
    ],
)
def test_a_binary_log_is_fine_unless_it_records_statements(
    log_bin: object, binlog_format: object, verdict: Verdict
) -> None:
    assert judge_binary_log(log_bin, binlog_format) == verdict


@pytest.mark.parametrize(
    ("log_bin", "sync_binlog", "verdict"),
    [
        (0, 0, None),
        ("OFF", 1, None),
        (1, None, None),  # a server without the variable: nothing to judge
        (1, 1, SYNC_BINLOG_OK),
        ("ON", "1", SYNC_BINLOG_OK),
        (b"ON", b"1", SYNC_BINLOG_OK),
        (1, 0, lossy_sync_binlog("0")),
        (1, 100, lossy_sync_binlog("100")),
    ],
)
def test_a_binary_log_must_reach_the_disk_at_every_commit(
    log_bin: object, sync_binlog: object, verdict: Verdict | None
) -> None:
    assert judge_binary_log_sync(log_bin, sync_binlog) == verdict


@pytest.mark.parametrize(
    ("version", "verdict"),
    [
        (0, Verdict("ok", "schema not created yet; serve creates it")),
        (3, Verdict("ok", "schema version 3 of 3")),
        (
            2,
            Verdict(
                "warning",
                "schema version 2 of 3: older than this program",
                "restart the daemon with this version (serve brings the schema up to date); "
                "admin commands refuse the database until then",
            ),
        ),
        (
            4,
            Verdict(
                "problem",
                "schema version 4, newer than this program's 3",
                "upgrade cryptum-bridge on this machine to the version the other nodes run",
            ),
        ),
    ],
)
def test_the_schema_version_against_this_programs(version: int, verdict: Verdict) -> None:
    assert judge_schema(version, 3) == verdict


WHERE = {"where": "db.internal:3306", "user": "bridge", "database": "shop_bridge"}
GRANT = (
    "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, REFERENCES ON shop_bridge.* "
    "TO 'bridge'@'<this machine>' (docs/scaling.md, \"Setting it up\")"
)


DENIED = "Access denied for user 'bridge'@'10.0.0.7' (using password: YES)"


@pytest.mark.parametrize(
    ("code", "cause", "detail", "message", "fix"),
    [
        (
            1045,
            "server",
            DENIED,
            f"the server refused the password: {DENIED}",
            "check that storage.password (or password_file) holds bridge's password, and that "
            "bridge may connect from this machine (CREATE USER 'bridge'@'<this machine>' "
            "IDENTIFIED BY …)",
        ),
        (
            1044,
            "server",
            "Access denied for user 'bridge'@'%' to database 'shop_bridge'",
            "bridge may not use shop_bridge: Access denied for user 'bridge'@'%' to database "
            "'shop_bridge'",
            f"run {GRANT}",
        ),
        (
            1049,
            "server",
            "Unknown database 'shop_bridge'",
            "the database shop_bridge does not exist",
            "as the server's administrator: CREATE DATABASE shop_bridge CHARACTER SET utf8mb4 "
            f"COLLATE utf8mb4_bin; {GRANT}",
        ),
        (
            1130,
            "server",
            "Host '10.0.0.7' is not allowed to connect to this MySQL server",
            "the server does not let bridge connect from this machine: Host '10.0.0.7' is not "
            "allowed to connect to this MySQL server",
            f"create bridge for this machine's address, and {GRANT}",
        ),
        (
            2003,
            "refused",
            "[Errno 111] Connection refused",
            "connection refused: nothing listens at db.internal:3306",
            "is the MySQL server running, listening on the network (bind-address), and are the "
            "host and port in storage.url right?",
        ),
        (
            2005,
            "unresolved",
            "[Errno -2] Name or service not known",
            "the host name of db.internal:3306 does not resolve ([Errno -2] Name or service not "
            "known)",
            "check the host in storage.url, and this machine's DNS (/etc/resolv.conf, /etc/hosts)",
        ),
        (
            None,
            "timeout",
            "timed out",
            "no answer from db.internal:3306",
            "check firewalls between this machine and db.internal:3306, and that the server runs",
        ),
        (
            2026,
            "tls",
            "certificate verify failed: unable to get local issuer certificate",
            "TLS with db.internal:3306 failed: certificate verify failed: unable to get local "
            "issuer certificate",
            "check that the server has TLS set up, and that storage.tls_ca_file names the CA "
            "that signed its certificate (its name must match the host in storage.url)",
        ),
        (
            2013,
            "network",
            "Lost connection to MySQL server during query",
            "cannot connect to db.internal:3306: Lost connection to MySQL server during query",
            "check storage.url and the network between this machine and db.internal:3306",
        ),
        (
            1040,
            "server",
            "Too many connections",
            "the server refused the connection: Too many connections",
            "check storage.url and the server's log",
        ),
    ],
)
def test_each_connection_failure_has_its_own_message_and_fix(
    code: int | None, cause: str, detail: str, message: str, fix: str
) -> None:
    verdict = explain_connect_failure(code, cause, detail, **WHERE)
    assert verdict == Verdict("problem", message, fix)
