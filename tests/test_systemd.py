"""systemd: the sd_notify client, `serve` under a notify socket, the unit, install.sh."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.storage.sqlite_migrations import MIGRATIONS, SCHEMA_VERSION
from bridge.systemd_notify import notify, watchdog_interval

from daemon import Daemon
from support import tool_missing, write_config

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "cryptum-bridge.service"
INSTALL = ROOT / "systemd" / "install.sh"
UNINSTALL = ROOT / "systemd" / "uninstall.sh"


@pytest.fixture
def notify_socket() -> Iterator[socket.socket]:
    """A datagram socket at a short path (AF_UNIX paths are limited to 107 bytes)."""
    directory = tempfile.mkdtemp(prefix="sdnotify-")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(os.path.join(directory, "notify"))
    sock.settimeout(10)
    yield sock
    sock.close()
    shutil.rmtree(directory)


def receive(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


# The notify client


def test_notify_without_socket_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False


def test_notify_sends_one_datagram_to_a_path(
    monkeypatch: pytest.MonkeyPatch, notify_socket: socket.socket
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.getsockname())
    assert notify("READY=1", "STATUS=up") is True
    assert receive(notify_socket) == ["READY=1", "STATUS=up"]


def test_notify_reaches_an_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"cryptum-bridge-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("WATCHDOG=1") is True
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_notify_to_a_missing_socket_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    with pytest.raises(OSError):
        notify("READY=1")


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        (None, None, None),
        ("30000000", None, 15.0),
        ("200000", "self", 0.1),
        ("200000", "1", None),  # meant for another process
        ("0", None, None),
        ("junk", None, None),
    ],
)
def test_watchdog_interval_is_half_the_timeout(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(os.getpid()) if value == "self" else value)
    assert watchdog_interval() == expected


# `serve` speaking the protocol


@pytest.mark.slow
def test_serve_notifies_ready_watchdog_and_stopping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, notify_socket: socket.socket
) -> None:
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    daemon = Daemon(
        write_config(tmp_path),
        env={"NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": "200000"},
    )
    try:
        ready = receive(notify_socket)
        assert ready[0] == "READY=1"
        # The listener was bound before READY: the address it names answers at once.
        status = ready[1]
        match = re.fullmatch(r"STATUS=listening on (\S+), 2 stores", status)
        assert match, status
        with urllib.request.urlopen(f"http://{match[1]}/healthz", timeout=5) as response:
            assert response.status == 200

        assert receive(notify_socket) == ["WATCHDOG=1"]
        assert receive(notify_socket) == ["WATCHDOG=1"]  # and again, every 0.1 s
        daemon.signal(signal.SIGTERM)
        messages = [receive(notify_socket)]
        while messages[-1][0] != "STOPPING=1":
            messages.append(receive(notify_socket))
    finally:
        code = daemon.stop()
    assert {message[0] for message in messages[:-1]} <= {"WATCHDOG=1"}
    assert messages[-1] == ["STOPPING=1", "STATUS=draining in-flight requests"]
    assert code == 0


@pytest.mark.slow
def test_serve_asks_systemd_for_time_to_migrate_an_old_database(
    tmp_path: Path, notify_socket: socket.socket
) -> None:
    database = tmp_path / "state" / "bridge.sqlite3"
    database.parent.mkdir()
    with sqlite3.connect(database) as connection:
        connection.executescript(f"BEGIN; {MIGRATIONS[0]}; PRAGMA user_version = 1; COMMIT;")
    daemon = Daemon(write_config(tmp_path), env={"NOTIFY_SOCKET": notify_socket.getsockname()})
    try:
        extend, status = receive(notify_socket)
        assert extend == "EXTEND_TIMEOUT_USEC=1800000000"
        assert status == f"STATUS=migrating the database to schema {SCHEMA_VERSION}"
        assert receive(notify_socket)[0] == "READY=1"
    finally:
        assert daemon.stop() == 0
    (migrating,) = [e for e in daemon.events() if e["event"] == "storage.migrating"]
    assert (migrating["from_version"], migrating["to_version"]) == (1, SCHEMA_VERSION)


# The unit


def test_unit_exposure_is_at_most_1_5() -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip(tool_missing("systemd-analyze"))
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    if match is None:
        pytest.skip(f"systemd-analyze gave no exposure level here: {result.stderr.strip()}")
    assert float(match[1]) <= 1.5, result.stdout


def test_unit_runs_what_install_sh_installs() -> None:
    unit = UNIT.read_text()
    assert "Type=notify\n" in unit
    assert (
        "ExecStart=/opt/cryptum-bridge/venv/bin/cryptum-bridge serve"
        " --config /etc/cryptum-bridge/config.toml\n" in unit
    )
    for name in (
        "webhook_secret",
        "cryptum_api_key",
        "woocommerce_consumer_key",
        "woocommerce_consumer_secret",
    ):
        assert f"LoadCredential={name}:/etc/cryptum-bridge/credentials/{name}\n" in unit


# install.sh and uninstall.sh


def run_script(script: Path, destdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run with DESTDIR, and with a `systemctl` on PATH that records any call."""
    fake_bin = destdir.parent / "fake-bin"
    fake_bin.mkdir(exist_ok=True)
    systemctl = fake_bin / "systemctl"
    systemctl.write_text(f'#!/bin/sh\necho "$@" >> {destdir.parent}/systemctl-calls\n')
    systemctl.chmod(0o755)
    env = {
        **os.environ,
        "DESTDIR": str(destdir),
        "PATH": f"{fake_bin}:{os.environ['PATH']}",
        # The test's own interpreter has the dependencies' wheels at hand.
        "PYTHON": sys.executable,
    }
    result = subprocess.run(
        ["sh", str(script), *args], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (destdir.parent / "systemctl-calls").exists(), "systemctl called with DESTDIR"
    return result


INSTALLED_PROGRAM = "/opt/cryptum-bridge/venv/bin/cryptum-bridge"
INSTALLED_DATABASE = "/var/lib/cryptum-bridge/bridge.sqlite3"


def as_the_owner_fills_it_in(config: Path, state: Path) -> None:
    """Step 1 of docs/operations.md: secrets as files in credentials/, none inline."""
    text = config.read_text()
    for inline, from_file in (
        ('webhook_secret = "whsec_change_me"', 'webhook_secret_file = "webhook_secret"'),
        (
            'woocommerce.consumer_key = "ck_change_me"',
            'woocommerce.consumer_key_file = "woocommerce_consumer_key"',
        ),
        (
            'woocommerce.consumer_secret = "cs_change_me"',
            'woocommerce.consumer_secret_file = "woocommerce_consumer_secret"',
        ),
        # The one change the test makes for itself: nothing outside DESTDIR.
        (f'path = "{INSTALLED_DATABASE}"', f'path = "{state / "bridge.sqlite3"}"'),
    ):
        assert inline in text, inline
        text = text.replace(inline, from_file)
    config.write_text(text)
    credentials = config.parent / "credentials"
    for name, value in (
        ("webhook_secret", "whsec_installed_4c1e9a2b7d3f"),
        ("woocommerce_consumer_key", "ck_installed_key"),
        ("woocommerce_consumer_secret", "cs_installed_secret"),
    ):
        (credentials / name).write_text(value)
        (credentials / name).chmod(0o600)


def run_installed(program: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """The installed program as root runs it: no CREDENTIALS_DIRECTORY, no flags but --config."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY")
    }
    return subprocess.run(
        [str(program), *arguments], capture_output=True, text=True, env=env, check=False
    )


@pytest.mark.slow
def test_install_upgrade_and_uninstall_under_destdir(tmp_path: Path) -> None:
    root = tmp_path / "root"
    config = root / "etc/cryptum-bridge/config.toml"
    venv_program = root / "opt/cryptum-bridge/venv/bin/cryptum-bridge"
    on_path = root / "usr/local/bin/cryptum-bridge"

    first = run_script(INSTALL, root)
    assert "created" in first.stdout
    assert (root / "etc/systemd/system/cryptum-bridge.service").read_text() == UNIT.read_text()
    example = (ROOT / "config.example.toml").read_text()
    # The created config is the example with the database's path made explicit,
    # so admin commands run by root find the service's database.
    assert config.read_text() == example.replace(
        f'# path = "{INSTALLED_DATABASE}"', f'path = "{INSTALLED_DATABASE}"'
    )
    assert config.read_text() != example
    assert (root / "etc/cryptum-bridge/config.example.toml").read_text() == example
    credentials = root / "etc/cryptum-bridge/credentials"
    assert credentials.stat().st_mode & 0o777 == 0o700
    version = subprocess.run(
        [str(venv_program), "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("cryptum-bridge ")
    # On PATH: a link to the program as the installed system names it.
    assert on_path.is_symlink() and os.readlink(on_path) == INSTALLED_PROGRAM
    assert f"linked {on_path} -> {INSTALLED_PROGRAM}" in first.stdout

    # As installed, the example's placeholders are errors naming their keys.
    refused = run_installed(venv_program, "check-config", "--config", str(config))
    assert refused.returncode == 2
    assert "stores[0].webhook_secret: still the example's placeholder" in refused.stderr

    # Filled in as the docs say, admin commands find the credentials in
    # credentials/ beside the config with no CREDENTIALS_DIRECTORY.
    state = root / "var/lib/private/cryptum-bridge"
    state.mkdir(parents=True)
    as_the_owner_fills_it_in(config, state)
    checked = run_installed(venv_program, "check-config", "--config", str(config))
    assert checked.returncode == 0, checked.stderr
    assert "whsec_installed" not in checked.stdout
    from bridge.storage import SqliteStorage

    async def create_database() -> None:
        await (await SqliteStorage.open(state / "bridge.sqlite3")).close()

    asyncio.run(create_database())
    listed = run_installed(venv_program, "events", "list", "--json", "--config", str(config))
    assert (listed.returncode, listed.stderr, json.loads(listed.stdout)) == (0, "", [])

    # An upgrade: the owner's config stays as it is, and so does a cryptum-bridge
    # on PATH that is not this install's.
    config.write_text(config.read_text() + "# edited by the owner\n")
    on_path.unlink()
    on_path.symlink_to("/usr/bin/true")
    second = run_script(INSTALL, root)
    assert "Upgrading" in second.stdout and "kept" in second.stdout
    assert config.read_text().endswith("# edited by the owner\n")
    subprocess.run([str(venv_program), "--version"], check=True, capture_output=True)
    assert os.readlink(on_path) == "/usr/bin/true"
    assert f"left {on_path} alone" in second.stdout

    kept = run_script(UNINSTALL, root)
    assert not (root / "etc/systemd/system/cryptum-bridge.service").exists()
    assert not (root / "opt/cryptum-bridge").exists()
    assert config.exists() and (credentials / "webhook_secret").exists()
    assert (state / "bridge.sqlite3").exists()
    assert "--purge" in kept.stdout
    assert os.readlink(on_path) == "/usr/bin/true"  # not ours: kept

    on_path.unlink()
    on_path.symlink_to(INSTALLED_PROGRAM)  # ours, as install.sh makes it
    purged = run_script(UNINSTALL, root, "--purge")
    assert not on_path.is_symlink()
    assert f"Removed {on_path}" in purged.stdout
    assert not (root / "etc/cryptum-bridge").exists()
    assert not state.exists()
