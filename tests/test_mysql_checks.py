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
        ("nonsense", None),
        ("", None),
    ],
)
def test_server_versions_are_read_as_product_and_number(
    reported: str, parsed: ServerVersion | None
) -> None:
    assert parse_server_version(reported) == parsed


@pytest.mark.parametrize(
    ("reported", "level", "message"),
    [
        ("8.0.0", "ok", "connects; MySQL 8.0.0"),
        ("8.4.0", "ok", "connects; MySQL 8.4.0"),
        ("9.0.1", "ok", "connects; MySQL 9.0.1"),
        ("10.6.0-MariaDB", "ok", "connects; MariaDB 10.6.0"),
        ("11.4.2-MariaDB", "ok", "connects; MariaDB 11.4.2"),
        ("5.7.44", "problem", "MySQL 5.7.44 is older than MySQL 8.0, the oldest"),
        ("10.5.23-MariaDB", "problem", "MariaDB 10.5.23 is older than MariaDB 10.6, the oldest"),
        ("10.11-MariaDB", "ok", "connects; MariaDB 10.11.0"),
        ("x.y", "problem", "the server reports a version this program cannot read ('x.y')"),
    ],
)
def test_a_server_older_than_mysql_8_or_mariadb_10_6_is_a_problem(
    reported: str, level: str, message: str
) -> None:
    verdict = judge_version(reported)
    assert verdict.level == level
    assert verdict.message.startswith(message)
    assert bool(verdict.fix) == (level != "ok")


def test_a_too_old_server_is_told_what_to_upgrade_to() -> None:
    assert judge_version("10.5.1-MariaDB").fix == "upgrade the server to MariaDB 10.6 or newer"
    assert judge_version("5.7.1").fix == "upgrade the server to MySQL 8.0 or newer"


@pytest.mark.parametrize(
    ("reported", "variable"),
    [
        ("8.0.36", "transaction_isolation"),
        ("5.7.44", "tx_isolation"),
        ("10.6.16-MariaDB", "tx_isolation"),
        ("10.11.6-MariaDB-0+deb12u1", "tx_isolation"),
        ("11.0.5-MariaDB", "tx_isolation"),
        ("11.1.0-MariaDB", "transaction_isolation"),
        ("11.4.2-MariaDB", "transaction_isolation"),
        ("unreadable", "transaction_isolation"),
    ],
)
def test_the_isolation_variable_is_the_one_the_server_has(reported: str, variable: str) -> None:
    assert isolation_variable(reported) == variable


@pytest.mark.parametrize(
    ("value", "level"),
    [(1, "ok"), ("1", "ok"), (b"1", "ok"), (0, "warning"), (2, "warning"), (3, "warning")],
)
def test_only_flushing_at_every_commit_is_ok(value: object, level: str) -> None:
    verdict = judge_flush_log(value)
    assert verdict.level == level
    if level == "warning":
        assert verdict.message == (
            f"innodb_flush_log_at_trx_commit = {value if isinstance(value, int) else 1}: "
            "a commit could be lost on a crash, and with it a callback Cryptum was told was "
            "stored"
        )
        assert verdict.fix.startswith("set innodb_flush_log_at_trx_commit = 1")


def test_a_server_without_innodb_flushing_is_a_warning() -> None:
    assert judge_flush_log(None).level == "warning"


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("READ-COMMITTED", "ok"),
        ("read-committed", "ok"),
        ("READ COMMITTED", "ok"),
        (b"READ-COMMITTED", "ok"),
        ("REPEATABLE-READ", "problem"),
        ("SERIALIZABLE", "problem"),
        (None, "warning"),
    ],
)
def test_a_bridge_session_must_run_read_committed(value: object, level: str) -> None:
    verdict = judge_isolation(value, "tx_isolation")
    assert verdict.level == level
    if level == "problem":
        assert verdict.message == f"a session of the bridge runs {value} (tx_isolation), not " + (
            "READ COMMITTED"
        )


@pytest.mark.parametrize(
    ("log_bin", "binlog_format", "verdict"),
    [
        (0, "STATEMENT", Verdict("ok", "binary log off")),
        ("OFF", "STATEMENT", Verdict("ok", "binary log off")),
        (1, "ROW", Verdict("ok", "binary log on, binlog_format = ROW")),
        ("ON", "MIXED", Verdict("ok", "binary log on, binlog_format = MIXED")),
        (1, None, Verdict("ok", "binary log on, binlog_format = ROW")),  # no choice left
        (1, "row", Verdict("ok", "binary log on, binlog_format = ROW")),
    ],
)
def test_a_binary_log_is_fine_unless_it_records_statements(
    log_bin: object, binlog_format: object, verdict: Verdict
) -> None:
    assert judge_binary_log(log_bin, binlog_format) == verdict


@pytest.mark.parametrize("log_bin", [1, "1", "ON", b"ON"])
def test_a_binary_log_of_statements_is_a_problem(log_bin: object) -> None:
    verdict = judge_binary_log(log_bin, "STATEMENT")
    assert verdict.level == "problem"
    assert "binlog_format = STATEMENT" in verdict.message
    assert verdict.fix == (
        "set binlog_format = ROW (or MIXED) in the server's configuration and restart it"
    )


@pytest.mark.parametrize(
    ("log_bin", "sync_binlog", "level"),
    [
        (0, 0, None),
        ("OFF", 1, None),
        (1, None, None),  # a server without the variable: nothing to judge
        (1, 1, "ok"),
        ("ON", "1", "ok"),
        (1, 0, "warning"),
        (1, 100, "warning"),
    ],
)
def test_a_binary_log_must_reach_the_disk_at_every_commit(
    log_bin: object, sync_binlog: object, level: str | None
) -> None:
    verdict = judge_binary_log_sync(log_bin, sync_binlog)
    assert (verdict and verdict.level) == level
    if level == "warning":
        assert verdict is not None
        assert verdict.message.startswith(f"sync_binlog = {sync_binlog}: a commit could be lost")
        assert verdict.fix == "set sync_binlog = 1 in the server's configuration"


@pytest.mark.parametrize(
    ("version", "level", "message"),
    [
        (0, "ok", "schema not created yet; serve creates it"),
        (3, "ok", "schema version 3 of 3"),
        (2, "warning", "schema version 2 of 3: older than this program"),
        (4, "problem", "schema version 4, newer than this program's 3"),
    ],
)
def test_the_schema_version_against_this_programs(version: int, level: str, message: str) -> None:
    verdict = judge_schema(version, 3)
    assert (verdict.level, verdict.message) == (level, message)
    assert bool(verdict.fix) == (level != "ok")


WHERE = {"where": "db.internal:3306", "user": "bridge", "database": "shop_bridge"}


@pytest.mark.parametrize(
    ("code", "cause", "message", "fix"),
    [
        (
            1045,
            "server",
            "the server refused the password: Access denied",
            "holds bridge's password",
        ),
        (1044, "server", "bridge may not use shop_bridge: Access denied", "GRANT SELECT, INSERT"),
        (
            1049,
            "server",
            "the database shop_bridge does not exist",
            "CREATE DATABASE shop_bridge CHARACTER SET utf8mb4 COLLATE utf8mb4_bin; GRANT SELECT, "
            "INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, REFERENCES ON shop_bridge.* TO "
            "'bridge'@'<this machine>' (docs/scaling.md, \"Setting it up\")",
        ),
        (1130, "server", "the server does not let bridge connect from this machine", "create"),
        (2003, "refused", "connection refused: nothing listens at db.internal:3306", "running"),
        (2003, "unresolved", "the host name of db.internal:3306 does not resolve", "DNS"),
        (2003, "timeout", "no answer from db.internal:3306", "firewalls"),
        (2003, "tls", "TLS with db.internal:3306 failed: Access denied", "tls_ca_file"),
        (2003, "network", "cannot connect to db.internal:3306: Access denied", "network"),
        (1040, "server", "the server refused the connection: Access denied", "server's log"),
    ],
)
def test_each_connection_failure_has_its_own_message_and_fix(
    code: int, cause: str, message: str, fix: str
) -> None:
    verdict = explain_connect_failure(code, cause, "Access denied", **WHERE)
    assert verdict.level == "problem"
    assert verdict.message.startswith(message)
    assert fix in verdict.fix
