"""`cryptum-bridge doctor`: check an install and say how to fix what is wrong.

Every check yields `Finding`s: OK, a warning (worth acting on, but nothing
fails for it, so the exit code stays 0), or a problem with its fix. Nothing is
changed anywhere: WooCommerce is only read (and probed for write permission
with a PUT to order 0, which does not exist), Cryptum's API only listed.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import stat
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import aiohttp

from .config import Config, ConfigError, StoreConfig, load_config
from .cryptum import CryptumClient
from .migrations import SCHEMA_VERSION
from .storage import Database, StorageError
from .upstream import FailureKind, UpstreamFailure
from .woocommerce import WooCommerceClient

__all__ = ["Finding", "run_doctor"]

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


async def _check_database(config: Config) -> list[Finding]:
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
        database = await Database.open(path, create=False)
    except StorageError as error:
        return [*findings, _problem(subject, str(error), "restore from a backup, or upgrade")]
    try:
        rows = await database.connection.execute_fetchall("PRAGMA user_version")
        version = next(iter(rows))[0]
    finally:
        await database.close()
    findings.append(_ok(subject, f"opens, schema version {version} of {SCHEMA_VERSION}"))
    return findings


def _woo_fix(failure: UpstreamFailure) -> str:
    if failure.kind is FailureKind.CONFIG:
        return failure.reason
    return "check that WordPress answers at woocommerce.url and its REST API is enabled"


async def _check_woocommerce(store: StoreConfig, session: aiohttp.ClientSession) -> list[Finding]:
    subject = f"store {store.name}: WooCommerce {store.woocommerce.url}"
    client = WooCommerceClient(store.woocommerce, session=session, timeout_seconds=10)
    findings: list[Finding] = []
    try:
        async with session.get(
            store.woocommerce.url + "/wp-json/", timeout=aiohttp.ClientTimeout(total=10)
        ) as response:
            date = response.headers.get("Date")
        findings.append(_ok(subject, f"reachable ({client.auth_method} authentication)"))
        findings.extend(_clock_findings(subject, date))
    except (aiohttp.ClientError, TimeoutError) as error:
        return [
            _problem(
                subject,
                f"unreachable ({type(error).__name__})",
                "set woocommerce.url to the WordPress home URL this machine can reach",
            )
        ]
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


def run_doctor(config_path: Path) -> tuple[int, list[Finding]]:
    """All findings, and the exit code: 0 when there is no problem (warnings aside), 1 otherwise."""
    try:
        config = load_config(config_path)
    except ConfigError as error:
        return 1, [
            _problem("config", problem, "edit the config (see config.example.toml)")
            for problem in error.problems
        ]
    findings = asyncio.run(_diagnose(config))
    return (0 if all(f.ok for f in findings) else 1), findings
