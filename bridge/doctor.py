"""`cryptum-bridge doctor`: check an install and say how to fix what is wrong.

Every check yields `Finding`s: OK, a warning (worth acting on, but nothing
fails for it, so the exit code stays 0), or a problem with its fix. Nothing is
changed anywhere: WooCommerce is only read (and probed for write permission
with a PUT to order 0, which does not exist), Cryptum's API only listed, a
MySQL server only asked for its version and settings, which `mysql_checks.py`
judges.

A connection that fails is named by its cause, as the bridge itself would
meet it (the shop is reached with the same TLS settings, `woocommerce.ca_file`
included): a certificate that does not verify, a host name that does not
resolve, a port nobody listens on, no answer at all. A credential file that
cannot be read is named with its owner and mode and the user doctor runs as.
"""

from __future__ import annotations

import asyncio
import errno
import grp
import os
import pwd
import socket
import ssl
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from yarl import URL

from .config import (
    Config,
    ConfigError,
    CredentialFileError,
    StorageConfig,
    StoreConfig,
    load_config,
)
from .cryptum import CryptumClient
from .mysql_checks import (
    Verdict,
    explain_connect_failure,
    isolation_variable,
    judge_binary_log,
    judge_binary_log_sync,
    judge_flush_log,
    judge_isolation,
    judge_schema,
    judge_version,
)
from .storage import SqliteStorage, StorageError
from .upstream import FailureKind, UpstreamFailure
from .woocommerce import WooCommerceClient, tls_context

if TYPE_CHECKING:
    from .storage.mysql_server import ServerSession

__all__ = ["Finding", "describe_connection_failure", "explain_unreadable", "run_doctor"]

# WooCommerce refuses OAuth timestamps more than 15 minutes off; warn well before.
_SKEW_WARNING_SECONDS = 120


@dataclass(frozen=True, slots=True)
class Finding:
    ok: bool
    subject: str
    message: str
    fix: str = ""
    # A warning is ok (it fails nothing) but is shown for the operator to act on.
    warning: bool = False

    def render(self) -> str:
        label = "PROBLEM" if not self.ok else "WARNING" if self.warning else "OK     "
        line = f"{label}  {self.subject}: {self.message}"
        return line + (f"\n         fix: {self.fix}" if self.fix else "")


def _ok(subject: str, message: str) -> Finding:
    return Finding(True, subject, message)


def _warning(subject: str, message: str) -> Finding:
    return Finding(True, subject, message, warning=True)


def _problem(subject: str, message: str, fix: str) -> Finding:
    return Finding(False, subject, message, fix)


def _finding(subject: str, verdict: Verdict) -> Finding:
    if verdict.level == "problem":
        return _problem(subject, verdict.message, verdict.fix)
    if verdict.level == "warning":
        # It fails nothing, but says what to do like a problem does.
        return Finding(True, subject, verdict.message, verdict.fix, warning=True)
    return _ok(subject, verdict.message)


async def _check_database(config: Config) -> list[Finding]:
    if config.storage.engine == "mysql":
        return await _check_mysql(config.storage)
    return await _check_sqlite(config)


async def _check_mysql(settings: StorageConfig) -> list[Finding]:
    """Connect as the bridge does, then judge the server and the schema (mysql_checks.py)."""
    # Imported here: a SQLite install never loads the MySQL driver.
    from .storage.mysql_server import ServerUnreachable, server_session

    subject = f"database {settings.describe()}"
    target = settings.mysql
    try:
        async with server_session(settings) as server:
            verdicts = await _judge_server(server)
    except ServerUnreachable as failure:
        verdict = explain_connect_failure(
            failure.code,
            failure.cause,
            failure.detail,
            where=target.socket or f"{target.host}:{target.port}",
            user=target.user,
            database=target.database,
        )
        return [_finding(subject, verdict)]
    return [_finding(subject, verdict) for verdict in verdicts]


async def _judge_server(server: ServerSession) -> list[Verdict]:
    from .storage.mysql import MysqlStorage

    version = str(await server.variable("version"))
    isolation = isolation_variable(version)
    log_bin = await server.variable("log_bin")
    verdicts = [
        judge_version(version),
        judge_flush_log(await server.variable("innodb_flush_log_at_trx_commit")),
        judge_isolation(await server.variable(isolation), isolation),
        judge_binary_log(log_bin, await server.variable("binlog_format")),
        judge_binary_log_sync(log_bin, await server.variable("sync_binlog")),
        judge_schema(await server.schema_version(), MysqlStorage.SCHEMA_VERSION),
    ]
    return [verdict for verdict in verdicts if verdict is not None]


async def _check_sqlite(config: Config) -> list[Finding]:
    path = config.storage.database_path
    subject = f"database {path}"
    if not path.exists():
        # serve creates missing directories, so the nearest existing one decides.
        existing = next(parent for parent in path.parents if parent.exists())
        if os.access(existing, os.W_OK):
            return [_ok(subject, "not created yet; serve creates it")]
        fix = f"create {path.parent} for the service's user, or set storage.path"
        return [_problem(subject, f"missing, and {existing} is not writable", fix)]
    findings = []
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        findings.append(
            _problem(subject, f"mode {mode:o} lets other users read payments", f"chmod 600 {path}")
        )
    try:
        storage = await SqliteStorage.open(path, create=False)
    except StorageError as error:
        return [*findings, _problem(subject, str(error), "restore from a backup, or upgrade")]
    try:
        version = await storage.schema_version()
    finally:
        await storage.close()
    latest = SqliteStorage.SCHEMA_VERSION
    findings.append(_ok(subject, f"opens, schema version {version} of {latest}"))
    return findings


# How long doctor waits for a shop or Cryptum to answer.
_TIMEOUT_SECONDS = 10.0


def _host_port(url: str) -> str:
    parsed = URL(url)
    host = f"[{parsed.host}]" if parsed.host and ":" in parsed.host else parsed.host
    return f"{host}:{parsed.port}"


def describe_connection_failure(
    error: BaseException, url: str, *, url_key: str, ca_file: Path | None = None
) -> tuple[str, str]:
    """The cause of a request to `url` that got no HTTP answer, and its fix.

    `url_key` is the config key holding the URL; `ca_file` the CA bundle the
    request trusted besides the system's (only the shop has one).
    """
    where = _host_port(url)
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return _certificate_failure(error, where, url_key=url_key, ca_file=ca_file)
    if isinstance(error, aiohttp.ClientSSLError):
        reason = str(getattr(error, "os_error", "") or error)
        return (
            f"TLS handshake with {where} failed: {reason}",
            f"check that {where} speaks HTTPS (a plain-HTTP server needs an http:// {url_key})",
        )
    if isinstance(error, aiohttp.ClientConnectorError):
        return _connect_failure(error.os_error, url, where, url_key=url_key)
    if isinstance(error, TimeoutError):
        return (
            f"no answer from {where} within {_TIMEOUT_SECONDS:.0f} s",
            f"check firewalls between this machine and {where}, and that it answers at all",
        )
    return (
        f"the connection to {where} failed ({type(error).__name__})",
        f"check {url_key} and the network between this machine and {where}",
    )


def _certificate_failure(
    error: aiohttp.ClientConnectorCertificateError,
    where: str,
    *,
    url_key: str,
    ca_file: Path | None,
) -> tuple[str, str]:
    cause = error.certificate_error
    reason = getattr(cause, "verify_message", None) or str(cause)
    message = f"TLS certificate verification of {where} failed: {reason}"
    if "hostname" in reason.lower() or "ip address mismatch" in reason.lower():
        return message, f"set {url_key} to a host name the shop's certificate names"
    if ca_file is not None:
        return message, (
            f"woocommerce.ca_file ({ca_file}) does not verify the shop's certificate: set it "
            "to the PEM file of the CA that signed it"
        )
    if url_key == "woocommerce.url":
        return message, (
            "if the shop's certificate comes from its own CA, set woocommerce.ca_file to "
            "that CA's PEM file; otherwise give the shop a certificate this machine trusts"
        )
    return message, "update this machine's CA certificates (Debian: ca-certificates)"


def _connect_failure(os_error: OSError, url: str, where: str, *, url_key: str) -> tuple[str, str]:
    if isinstance(os_error, socket.gaierror):
        return (
            f"the host name {URL(url).host} does not resolve ({os_error.strerror or os_error})",
            f"check the host name in {url_key}, and this machine's DNS "
            "(/etc/resolv.conf, /etc/hosts)",
        )
    if os_error.errno == errno.ECONNREFUSED:
        server = "WordPress (its web server)" if url_key == "woocommerce.url" else "it"
        return (
            f"connection refused: nothing listens at {where}",
            f"is {server} running, and are the host and port in {url_key} right?",
        )
    if os_error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return (
            f"no route to {where} ({os_error.strerror})",
            f"check {url_key} and this machine's network and firewall",
        )
    return (
        f"cannot connect to {where} ({os_error.strerror or os_error})",
        f"check {url_key} and the network between this machine and {where}",
    )


def _woo_fix(failure: UpstreamFailure) -> str:
    if failure.kind is FailureKind.CONFIG:
        return failure.reason
    return "check that WordPress answers at woocommerce.url and its REST API is enabled"


def _shop_tls(store: StoreConfig) -> ssl.SSLContext | None:
    """The delivery worker's TLS context for this shop; None for plain HTTP or aiohttp's default."""
    if not store.woocommerce.url.startswith("https://"):
        return None
    return tls_context(store.woocommerce)


async def _check_woocommerce(store: StoreConfig, session: aiohttp.ClientSession) -> list[Finding]:
    subject = f"store {store.name}: WooCommerce {store.woocommerce.url}"
    ca_file = store.woocommerce.ca_file
    try:
        context = _shop_tls(store)
    except (OSError, ssl.SSLError) as error:
        reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or error
        return [
            _problem(
                subject,
                f"woocommerce.ca_file {ca_file} cannot be used ({reason})",
                "set woocommerce.ca_file to a readable PEM file of the CA that signed the "
                "shop's certificate",
            )
        ]
    client = WooCommerceClient(store.woocommerce, session=session, timeout_seconds=10)
    findings: list[Finding] = []
    try:
        async with session.get(
            store.woocommerce.url + "/wp-json/",
            ssl=context if context is not None else True,
            timeout=aiohttp.ClientTimeout(total=_TIMEOUT_SECONDS),
        ) as response:
            date = response.headers.get("Date")
        findings.append(_ok(subject, f"reachable ({client.auth_method} authentication)"))
        findings.extend(_clock_findings(subject, date))
    except (aiohttp.ClientError, TimeoutError) as error:
        message, fix = describe_connection_failure(
            error, store.woocommerce.url, url_key="woocommerce.url", ca_file=ca_file
        )
        return [_problem(subject, message, fix)]
    try:
        # A list needs read permission; a missing single order would not tell.
        await client.list_orders(per_page=1)
    except UpstreamFailure as failure:
        return [*findings, _problem(subject, "reading orders fails", _woo_fix(failure))]
    try:
        # Order 0 does not exist: a key that may write gets "invalid id", a
        # read-only key is refused before that.
        await client.update_order("0", {})
    except UpstreamFailure as failure:
        if failure.kind is not FailureKind.ORDER_NOT_FOUND:
            return [*findings, _problem(subject, "updating orders fails", _woo_fix(failure))]
    findings.append(_ok(subject, "the API key can read and update orders"))
    return findings


def _clock_findings(subject: str, date_header: str | None) -> list[Finding]:
    if not date_header:
        return []
    try:
        skew = time.time() - parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError):
        return []
    if abs(skew) > _SKEW_WARNING_SECONDS:
        return [
            _problem(
                subject,
                f"this machine's clock is {skew:+.0f} s off the shop's",
                "run NTP (systemd-timesyncd or chrony): OAuth fails beyond 15 minutes",
            )
        ]
    return [_ok(subject, f"clocks agree within {abs(skew):.0f} s")]


async def _check_cryptum(store: StoreConfig, session: aiohttp.ClientSession) -> list[Finding]:
    subject = f"store {store.name}: Cryptum API {store.api_base_url}"
    if store.cryptum_api_key is None:
        return [
            _ok(
                subject,
                "no API key: callbacks are not confirmed and nothing is reconciled "
                "(set cryptum_api_key to turn both on)",
            )
        ]
    try:
        # Any HTTP answer will do: this only tells a network failure by its cause.
        async with session.get(
            store.api_base_url, timeout=aiohttp.ClientTimeout(total=_TIMEOUT_SECONDS)
        ):
            pass
    except (aiohttp.ClientError, TimeoutError) as error:
        key = "cryptum_api_url" if store.cryptum_api_url else "cryptum_environment"
        message, fix = describe_connection_failure(error, store.api_base_url, url_key=key)
        return [_problem(subject, message, fix)]
    client = CryptumClient(
        base_url=store.api_base_url,
        api_key=store.cryptum_api_key.get_secret_value(),
        session=session,
        timeout_seconds=10,
    )
    try:
        await client.list_orders(
            store_id=store.cryptum_store_id,
            payment_status="confirmed",
            since=_an_hour_ago(),
            limit=1,
        )
    except UpstreamFailure as failure:
        fix = (
            failure.reason
            if failure.kind is FailureKind.CONFIG
            else "check network access to the API"
        )
        return [_problem(subject, "listing the store's orders fails", fix)]
    return [_ok(subject, "the API key lists the store's orders")]


def _an_hour_ago() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


async def _check_listen(config: Config, session: aiohttp.ClientSession) -> list[Finding]:
    address = config.server.address
    subject = f"listen {config.server.listen}"
    if address.unix_path is not None:
        return [_ok(subject, "unix socket; serve replaces a stale one")]
    if address.port == 0:
        return [_ok(subject, "any free port")]
    family = socket.AF_INET6 if ":" in (address.host or "") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address.host, address.port))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                return [_problem(subject, error.strerror or str(error), "fix server.listen")]
        else:
            return [_ok(subject, "free")]
    try:
        host = f"[{address.host}]" if family == socket.AF_INET6 else address.host
        async with session.get(
            f"http://{host}:{address.port}/healthz", timeout=aiohttp.ClientTimeout(total=3)
        ) as response:
            if response.status == 200:
                return [_ok(subject, "in use by a running bridge that answers /healthz")]
    except (aiohttp.ClientError, TimeoutError):
        pass
    return [
        _problem(
            subject, "in use by another program", "stop it, or choose another port in server.listen"
        )
    ]


async def _diagnose(config: Config) -> list[Finding]:
    findings = [_ok("config", f"valid, {len(config.stores)} store(s)")]
    # Each line names its key and says what to do, so it needs no separate fix.
    findings += [_warning("config", line) for line in config.warnings()]
    findings += await _check_database(config)
    async with aiohttp.ClientSession() as session:
        for store in config.stores:
            findings += await _check_woocommerce(store, session)
            findings += await _check_cryptum(store, session)
        findings += await _check_listen(config, session)
    return findings


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _allowed(status: os.stat_result, uid: int, groups: Sequence[int], want: int) -> bool:
    """Whether `uid` may `want` (4 read, 1 search) by the mode bits (root may always)."""
    if uid == 0:
        return True
    mode = status.st_mode
    if status.st_uid == uid:
        return (mode >> 6) & want == want
    if status.st_gid in groups:
        return (mode >> 3) & want == want
    return mode & want == want


def explain_unreadable(
    cause: CredentialFileError, *, uid: int | None = None, groups: Sequence[int] | None = None
) -> str:
    """Why a credential file cannot be read, and what to do, for the user `uid` doctor runs as."""
    uid = os.geteuid() if uid is None else uid
    groups = [os.getegid(), *os.getgroups()] if groups is None else groups
    path = cause.paths[-1]
    if isinstance(cause.error, FileNotFoundError | NotADirectoryError):
        if len(cause.paths) == 1 and os.environ.get("CREDENTIALS_DIRECTORY"):
            return (
                f"{path} does not exist: systemd hands the service only the files named by "
                f"LoadCredential= (add LoadCredential={path.name}:/etc/cryptum-bridge/credentials/"
                f"{path.name} with systemctl edit cryptum-bridge), or unset CREDENTIALS_DIRECTORY "
                "to look beside the config"
            )
        return (
            f"create {path} holding the secret (as root: umask 077; printf '%s' SECRET > {path}), "
            "or correct the file name in the config"
        )
    if isinstance(cause.error, IsADirectoryError):
        return f"{path} is a directory: name the file that holds the secret"
    who = f"{_user(uid)} (uid {uid})"
    # The first directory on the way that may not be entered, else the file itself.
    for step in [*reversed(path.parents), path]:
        try:
            status = step.stat()
        except OSError:
            break
        is_file = step == path
        if _allowed(status, uid, groups, 4 if is_file else 1):
            continue
        what = "read it" if is_file else "enter it"
        owner = f"{_user(status.st_uid)}:{_group(status.st_gid)}"
        mode = stat.S_IMODE(status.st_mode)
        return (
            f"{step} is owned by {owner} with mode {mode:04o} and doctor runs as {who}, who may "
            f"not {what}: "
            f"run it as root (sudo cryptum-bridge doctor), or let {_user(uid)} read {path} "
            "(chown, chmod or an ACL); the service itself gets the file through LoadCredential="
        )
    reason = cause.error.strerror or str(cause.error)
    return (
        f"{path}: {reason}, although its mode lets {who} read it: check ACLs and any "
        "security policy (AppArmor, SELinux) on it"
    )


def _config_findings(config_path: Path, error: ConfigError) -> list[Finding]:
    findings = []
    for problem in error.problems:
        cause = error.unreadable.get(problem)
        if cause is not None:
            fix = explain_unreadable(cause)
        else:
            fix = f"edit {config_path} (config.example.toml documents every key)"
        findings.append(_problem("config", problem, fix))
    return findings


def run_doctor(config_path: Path) -> tuple[int, list[Finding]]:
    """All findings, and the exit code: 0 when there is no problem (warnings aside), 1 otherwise."""
    try:
        config = load_config(config_path)
    except ConfigError as error:
        return 1, _config_findings(config_path, error)
    findings = asyncio.run(_diagnose(config))
    return (0 if all(f.ok for f in findings) else 1), findings
