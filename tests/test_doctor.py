"""`doctor` against the simulated WooCommerce and Cryptum, set up right and wrongly."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import main
from bridge.config import CredentialFileError
from bridge.doctor import Finding, explain_unreadable, run_doctor
from bridge.storage import open_storage
from bridge_simulators.cryptum import CryptumSimulator
from bridge_simulators.tls import write_self_signed_certificate
from bridge_simulators.woocommerce import WooCommerceSimulator

from engines import mariadb_settings, storage_document
from mariadb import PASSWORD, MariaDB
from support import MAIN_STORE_ID, config_document, to_toml

KEY, SECRET = "ck_doctor_rw", "cs_doctor_rw"


@pytest.fixture
async def shop() -> AsyncIterator[WooCommerceSimulator]:
    async with WooCommerceSimulator() as simulator:
        simulator.add_key(KEY, SECRET)
        simulator.add_key("ck_doctor_ro", "cs_doctor_ro", permissions="read")
        yield simulator


@pytest.fixture
async def cryptum() -> AsyncIterator[CryptumSimulator]:
    async with CryptumSimulator() as simulator:
        simulator.add_store(MAIN_STORE_ID, api_key="api-key", webhook_secret="s")
        yield simulator


def write(
    tmp_path: Path,
    shop: WooCommerceSimulator,
    *,
    webhook_secret: str = "",
    storage: dict[str, Any] | None = None,
    **woocommerce: Any,
) -> Path:
    document = config_document(tmp_path / "state" / "bridge.sqlite3")
    if storage is not None:
        document["storage"] = storage
    document["stores"] = [document["stores"][0]]
    if webhook_secret:
        document["stores"][0]["webhook_secret"] = webhook_secret
    document["stores"][0]["woocommerce"] = {
        "url": shop.base_url,
        "consumer_key": KEY,
        "consumer_secret": SECRET,
    } | woocommerce
    path = tmp_path / "config.toml"
    path.write_text(to_toml(document))
    return path


async def doctor(path: Path) -> tuple[int, list[Finding]]:
    # doctor runs its own event loop; the simulators keep serving in this one.
    return await asyncio.to_thread(run_doctor, path)


def problems(findings: list[Finding]) -> list[str]:
    return [f"{f.message} / {f.fix}" for f in findings if not f.ok]


async def test_a_good_install_has_no_problem(tmp_path: Path, shop: WooCommerceSimulator) -> None:
    code, findings = await doctor(write(tmp_path, shop))
    assert problems(findings) == []
    assert code == 0
    subjects = " ".join(f.subject for f in findings)
    assert "database" in subjects and "WooCommerce" in subjects and "listen" in subjects
    assert not any(f.warning for f in findings)


async def test_a_short_webhook_secret_is_a_warning_that_fails_nothing(
    tmp_path: Path, shop: WooCommerceSimulator
) -> None:
    code, findings = await doctor(write(tmp_path, shop, webhook_secret="short-Qx9"))
    assert problems(findings) == []
    assert code == 0
    (warning,) = [f for f in findings if f.warning]
    assert warning.ok
    assert warning.render() == (
        "WARNING  config: stores[0].webhook_secret: shorter than 16 characters; "
        "use a long random secret"
    )
    assert "Qx9" not in "\n".join(f.render() for f in findings)


async def test_the_doctor_command_counts_warnings_in_its_summary(
    tmp_path: Path, shop: WooCommerceSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(tmp_path, shop, webhook_secret="short-Qx9")
    code = await asyncio.to_thread(main, ["doctor", "--config", str(config)])
    assert code == 0
    assert capsys.readouterr().out.rstrip().endswith("No problems found, 1 warning(s).")


@pytest.mark.parametrize(
    ("setting", "message", "fix"),
    [
        ({"url_host": "localhost"}, "reading orders fails", "home URL"),
        (
            {"consumer_key": "ck_doctor_ro", "consumer_secret": "cs_doctor_ro"},
            "updating orders fails",
            "read-only",
        ),
        ({"auth": "basic"}, "reading orders fails", "Basic auth"),
        ({"consumer_secret": "cs_wrong"}, "reading orders fails", "home URL"),
        (
            {"url": "http://127.0.0.1:9"},
            "connection refused: nothing listens at 127.0.0.1:9",
            "is WordPress (its web server) running, and are the host and port in "
            "woocommerce.url right?",
        ),
        (
            {"url": "https://shop.invalid"},
            "the host name shop.invalid does not resolve",
            "check the host name in woocommerce.url, and this machine's DNS",
        ),
    ],
    ids=[
        "home-url-mismatch",
        "read-only-key",
        "basic-over-http",
        "wrong-secret",
        "refused",
        "unresolvable",
    ],
)
async def test_each_misconfiguration_is_named_with_its_fix(
    tmp_path: Path, shop: WooCommerceSimulator, setting: dict[str, str], message: str, fix: str
) -> None:
    settings = dict(setting)
    if "url_host" in settings:
        assert shop.base_url is not None
        settings = {"url": shop.base_url.replace("127.0.0.1", settings.pop("url_host"))}
    code, findings = await doctor(write(tmp_path, shop, **settings))
    assert code == 1
    (problem,) = problems(findings)
    assert message in problem and fix in problem


async def test_clock_skew_is_reported(tmp_path: Path) -> None:
    async with WooCommerceSimulator(clock=lambda: __import__("time").time() + 3600) as skewed:
        skewed.add_key(KEY, SECRET)
        code, findings = await doctor(write(tmp_path, skewed))
    assert code == 1
    assert any("clock" in problem for problem in problems(findings))


async def test_cryptum_api_key_is_checked(
    tmp_path: Path, shop: WooCommerceSimulator, cryptum: CryptumSimulator
) -> None:
    path = write(tmp_path, shop)
    text = path.read_text().replace(
        "[[stores]]\n",
        f'[[stores]]\ncryptum_api_key = "api-key"\ncryptum_api_url = "{cryptum.base_url}"\n',
    )
    path.write_text(text)
    code, findings = await doctor(path)
    assert code == 0, problems(findings)
    path.write_text(text.replace('cryptum_api_key = "api-key"', 'cryptum_api_key = "wrong"'))
    code, findings = await doctor(path)
    assert code == 1
    assert any("cryptum_api_key" in problem for problem in problems(findings))


async def test_a_bad_config_is_reported_by_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[[stores]]\nname = "main"\n')
    code, findings = await doctor(path)
    assert code == 1
    assert any("stores[0].cryptum_store_id" in f.message for f in findings)


async def test_a_loose_database_mode_is_reported(
    tmp_path: Path, shop: WooCommerceSimulator
) -> None:
    path = write(tmp_path, shop)
    database = tmp_path / "state" / "bridge.sqlite3"
    database.parent.mkdir()
    from bridge.storage import SqliteStorage

    opened = await SqliteStorage.open(database)
    await opened.close()
    database.chmod(0o644)
    code, findings = await doctor(path)
    assert code == 1
    assert any("chmod 600" in problem for problem in problems(findings))


# TLS: the shop is reached as the delivery worker reaches it, ca_file included


@pytest.fixture
async def https_shop(tmp_path: Path) -> AsyncIterator[tuple[WooCommerceSimulator, Path]]:
    certificate, key = write_self_signed_certificate(tmp_path / "shop-tls")
    async with WooCommerceSimulator(https=True, tls_cert=certificate, tls_key=key) as simulator:
        simulator.add_key(KEY, SECRET)
        yield simulator, certificate


async def test_a_shop_with_its_own_ca_is_verified_with_ca_file(
    tmp_path: Path, https_shop: tuple[WooCommerceSimulator, Path]
) -> None:
    shop, certificate = https_shop
    code, findings = await doctor(write(tmp_path, shop, ca_file=str(certificate)))
    assert problems(findings) == []
    assert code == 0
    assert any("reachable (basic authentication)" in f.message for f in findings)


async def test_a_shop_with_its_own_ca_and_no_ca_file_is_a_tls_problem_naming_ca_file(
    tmp_path: Path, https_shop: tuple[WooCommerceSimulator, Path]
) -> None:
    shop, _ = https_shop
    code, findings = await doctor(write(tmp_path, shop))
    assert code == 1
    (problem,) = [f for f in findings if not f.ok]
    assert problem.message.startswith("TLS certificate verification of 127.0.0.1:")
    assert "self-signed certificate" in problem.message
    assert "set woocommerce.ca_file to that CA's PEM file" in problem.fix


async def test_a_ca_file_that_does_not_sign_the_shop_is_named(
    tmp_path: Path, https_shop: tuple[WooCommerceSimulator, Path]
) -> None:
    shop, _ = https_shop
    other, _ = write_self_signed_certificate(tmp_path / "another-ca")
    code, findings = await doctor(write(tmp_path, shop, ca_file=str(other)))
    assert code == 1
    (problem,) = [f for f in findings if not f.ok]
    assert "TLS certificate verification" in problem.message
    assert f"woocommerce.ca_file ({other}) does not verify the shop's certificate" in problem.fix


async def test_a_missing_ca_file_is_named(
    tmp_path: Path, https_shop: tuple[WooCommerceSimulator, Path]
) -> None:
    shop, _ = https_shop
    missing = tmp_path / "no-such-ca.pem"
    code, findings = await doctor(write(tmp_path, shop, ca_file=str(missing)))
    assert code == 1
    (problem,) = problems(findings)
    assert f"woocommerce.ca_file {missing} cannot be used" in problem


async def test_an_unreachable_cryptum_api_is_named_by_its_cause(
    tmp_path: Path, shop: WooCommerceSimulator
) -> None:
    path = write(tmp_path, shop)
    path.write_text(
        path.read_text().replace(
            "[[stores]]\n",
            '[[stores]]\ncryptum_api_key = "api-key"\ncryptum_api_url = "http://127.0.0.1:9"\n',
        )
    )
    code, findings = await doctor(path)
    assert code == 1
    (problem,) = [f for f in findings if not f.ok]
    assert "Cryptum API" in problem.subject
    assert problem.message == "connection refused: nothing listens at 127.0.0.1:9"
    assert "cryptum_api_url" in problem.fix


# Credential files doctor cannot read: which file, and what keeps it from being read


def secret_file_config(tmp_path: Path, shop: WooCommerceSimulator) -> Path:
    path = write(tmp_path, shop)
    text = path.read_text()
    (line,) = [line for line in text.splitlines() if line.startswith("webhook_secret = ")]
    path.write_text(text.replace(line, 'webhook_secret_file = "webhook_secret"'))
    return path


async def test_a_missing_credential_file_is_named_with_where_it_was_looked_for(
    tmp_path: Path, shop: WooCommerceSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    code, findings = await doctor(secret_file_config(tmp_path, shop))
    assert code == 1
    (finding,) = findings
    assert finding.message == (
        f"stores[0].webhook_secret_file: cannot read {tmp_path}/webhook_secret or "
        f"{tmp_path}/credentials/webhook_secret: no such file"
    )
    assert finding.fix.startswith(f"create {tmp_path}/credentials/webhook_secret holding")
    assert "edit" not in finding.fix


async def test_a_credential_file_this_user_may_not_read_names_owner_mode_and_user(
    open_dir: Path, shop: WooCommerceSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    credentials = open_dir / "credentials"
    credentials.mkdir(mode=0o755)
    secret = credentials / "webhook_secret"
    secret.write_text("a-secret-only-root-reads")
    secret.chmod(0o600)
    config = secret_file_config(open_dir, shop)
    # The tests run as root, whom no mode stops: doctor is made to see what
    # an ordinary user meets, a refused read, and to run as that user.
    real_read_text = Path.read_text

    def refused(self: Path, *args: Any, **kwargs: Any) -> str:
        if self == secret:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", refused)
    monkeypatch.setattr("bridge.doctor.os.geteuid", lambda: 65534)
    monkeypatch.setattr("bridge.doctor.os.getegid", lambda: 65534)
    monkeypatch.setattr("bridge.doctor.os.getgroups", lambda: [])
    code, findings = await doctor(config)
    assert code == 1
    (finding,) = findings
    assert finding.message == (
        f"stores[0].webhook_secret_file: cannot read {secret}: Permission denied"
    )
    assert finding.fix.startswith(f"{secret} is owned by {secret.owner()}:{secret.group()}")
    assert "with mode 0600 and doctor runs as nobody (uid 65534), who may not read it" in (
        finding.fix
    )
    assert "sudo cryptum-bridge doctor" in finding.fix
    assert "a-secret-only-root-reads" not in finding.render()


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user may enter (pytest's own are root's alone)."""
    directory = Path(tempfile.mkdtemp(prefix="doctor-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


def test_a_credentials_directory_that_may_not_be_entered_is_named(open_dir: Path) -> None:
    credentials = open_dir / "credentials"
    credentials.mkdir(mode=0o700)
    secret = credentials / "webhook_secret"
    secret.write_text("s")
    secret.chmod(0o644)
    cause = CredentialFileError("x", [secret], PermissionError(13, "Permission denied"))
    fix = explain_unreadable(cause, uid=65534, groups=[65534])
    assert fix.startswith(f"{credentials} is owned by ")
    assert "with mode 0700 and doctor runs as nobody (uid 65534), who may not enter it" in fix


def test_a_credential_file_readable_by_its_group_is_not_blamed(open_dir: Path) -> None:
    secret = open_dir / "webhook_secret"
    secret.write_text("s")
    secret.chmod(0o640)
    os.chown(secret, 0, 4242)
    cause = CredentialFileError("x", [secret], PermissionError(13, "Permission denied"))
    fix = explain_unreadable(cause, uid=65534, groups=[4242])
    assert "check ACLs and any security policy" in fix
    assert "may not read it" in explain_unreadable(cause, uid=65534, groups=[65534])


# A MySQL storage: reached as the bridge reaches it, then the server judged


def database_findings(findings: list[Finding]) -> list[str]:
    return [f.render() for f in findings if f.subject.startswith("database ")]


async def test_a_good_mysql_server_passes_and_the_schema_is_followed(
    tmp_path: Path, shop: WooCommerceSimulator, mariadb: MariaDB
) -> None:
    settings = mariadb_settings(mariadb)
    path = write(tmp_path, shop, storage=storage_document(settings))
    code, findings = await doctor(path)
    assert (code, problems(findings)) == (0, [])
    subject = f"database {settings.url}"
    rendered = database_findings(findings)
    assert rendered[0].startswith(f"OK       {subject}: connects; MariaDB 10.")
    assert rendered[1:] == [
        f"OK       {subject}: innodb_flush_log_at_trx_commit = 1: a commit is on disk when it "
        "returns",
        f"OK       {subject}: the bridge's sessions run READ COMMITTED",
        f"OK       {subject}: binary log off",
        f"OK       {subject}: schema not created yet; serve creates it",
    ]
    assert PASSWORD not in "\n".join(f.render() for f in findings)

    storage = await open_storage(settings)
    await storage.close()
    code, findings = await doctor(path)
    assert code == 0
    assert database_findings(findings)[-1] == f"OK       {subject}: schema version 1 of 1"


@pytest.mark.parametrize(
    ("change", "message", "fix"),
    [
        (
            {"password": "not-the-password"},
            "the server refused the password: Access denied for user 'bridge'@'127.0.0.1'",
            "check that storage.password (or password_file) holds bridge's password",
        ),
        (
            {"database": "no_such_database"},
            "the database no_such_database does not exist",
            "CREATE DATABASE no_such_database CHARACTER SET utf8mb4 COLLATE utf8mb4_bin; GRANT "
            "SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, REFERENCES ON "
            "no_such_database.* TO 'bridge'@'<this machine>'",
        ),
        (
            {"port": 9},
            "connection refused: nothing listens at 127.0.0.1:9",
            "is the MySQL server running",
        ),
        (
            {"host": "db.invalid"},
            "the host name of db.invalid:",
            "check the host in storage.url, and this machine's DNS",
        ),
    ],
    ids=["wrong-password", "unknown-database", "refused", "unresolvable"],
)
async def test_each_mysql_connection_failure_is_named_with_its_fix(
    tmp_path: Path,
    shop: WooCommerceSimulator,
    mariadb: MariaDB,
    change: dict[str, Any],
    message: str,
    fix: str,
) -> None:
    settings = mariadb_settings(mariadb)
    target = settings.mysql
    url = "mysql://bridge@{host}:{port}/{database}".format(
        **{"host": target.host, "port": target.port, "database": target.database} | change
    )
    storage = {"url": url, "password": change.get("password", PASSWORD)}
    code, findings = await doctor(write(tmp_path, shop, storage=storage))
    assert code == 1
    (problem,) = [f for f in findings if not f.ok]
    assert problem.subject == f"database {url}"
    assert message in problem.message and fix in problem.fix
    assert "not-the-password" not in problem.render()


async def test_a_server_that_may_lose_commits_or_logs_statements_is_reported(
    tmp_path: Path, shop: WooCommerceSimulator, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # The one server of its own this file starts: both unwise settings at once.
    server = MariaDB.start(
        tmp_path_factory.mktemp("mariadb-unwise"),
        extra_options=(
            "--innodb-flush-log-at-trx-commit=2",
            "--log-bin",
            "--binlog-format=STATEMENT",
        ),
    )
    try:
        settings = mariadb_settings(server)
        code, findings = await doctor(write(tmp_path, shop, storage=storage_document(settings)))
    finally:
        server.stop()
    assert code == 1
    flush, sync = [f for f in findings if f.warning]
    assert flush.message.startswith(
        "innodb_flush_log_at_trx_commit = 2: a commit could be lost on a crash"
    )
    assert flush.fix.startswith("set innodb_flush_log_at_trx_commit = 1")
    # MariaDB's default with a binary log: not synced at every commit.
    assert sync.message.startswith("sync_binlog = 0: a commit could be lost on a crash")
    assert sync.fix == "set sync_binlog = 1 in the server's configuration"
    (problem,) = [f for f in findings if not f.ok]
    assert problem.message.startswith("the binary log is on with binlog_format = STATEMENT")
    assert problem.fix.startswith("set binlog_format = ROW (or MIXED)")
    assert any(f.message == "the bridge's sessions run READ COMMITTED" for f in findings)
