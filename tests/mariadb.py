"""A throwaway MariaDB server for the tests and benchmarks: its own datadir, a loopback port.

`MariaDB.start(directory)` initialises a data directory under `directory`,
starts `mariadbd` on 127.0.0.1 with a free port and a socket of its own, and
makes an account for the bridge; `new_database()` gives each test an empty
database and its URL. `stop()` shuts it down. Nothing of the machine's own
MariaDB (config files, datadir, socket, service) is read or touched.

The server binaries come from Debian's `mariadb-server` (`.ci/run` installs it).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PASSWORD", "REUSE_VARIABLE", "USER", "MariaDB", "mariadb_available"]

USER = "bridge"
# Where a started server's port is written, for `attach`.
PORT_FILE = "port"
# Set to a directory where `python tests/mariadb.py start DIR` started a
# server, the tests use that one instead of starting their own: the mutation
# runs start a fresh pytest session per mutant.
REUSE_VARIABLE = "BRIDGE_TEST_MARIADB_DIR"
PASSWORD = "bridge-test-password"

# Small, so a test server starts fast and stays light beside the tests.
_SERVER_OPTIONS = (
    "--innodb-buffer-pool-size=64M",
    "--innodb-log-file-size=48M",
    "--skip-name-resolve",
    "--max-connections=500",
    "--character-set-server=utf8mb4",
)


def mariadb_available() -> bool:
    return shutil.which("mariadbd") is not None and shutil.which("mariadb-install-db") is not None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class MariaDB:
    """A running throwaway server; `url(database)` is what the bridge's config takes."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None
    options: tuple[str, ...] = ()
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def socket_path(self) -> Path:
        return self.directory / "mysqld.sock"

    @classmethod
    def start(cls, directory: Path, *, extra_options: tuple[str, ...] = ()) -> MariaDB:
        directory.mkdir(parents=True, exist_ok=True)
        datadir = directory / "data"
        # Its own temporary directory: installs running side by side in a
        # shared /tmp have been seen to trip over each other's files.
        (directory / "tmp").mkdir(exist_ok=True)
        as_root = ("--user=root",) if os.geteuid() == 0 else ()
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={datadir}",
                f"--tmpdir={directory / 'tmp'}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                *as_root,
            ],
            check=True,
            capture_output=True,
        )
        port = _free_port()
        process = _run_server(directory, port, extra_options)
        server = cls(directory, port, process, extra_options)
        server._wait_ready()
        (directory / PORT_FILE).write_text(str(port))
        server.sql(
            f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';"
            f" GRANT ALL ON *.* TO '{USER}'@'127.0.0.1';"
        )
        return server

    @classmethod
    def attach(cls, directory: Path) -> MariaDB:
        """A server another process started in `directory` (and stops): see `main`."""
        server = cls(directory, int((directory / PORT_FILE).read_text()), None)
        server._wait_ready()
        return server

    def restart(self) -> None:
        """Start the server again on its data and port, after `stop(keep_data=True)`."""
        self.process = _run_server(self.directory, self.port, self.options)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                log = (self.directory / "server.log").read_text(errors="replace")
                raise RuntimeError(f"mariadbd exited at start:\n{log[-2000:]}")
            if self.socket_path.exists():
                probe = subprocess.run([*self._client(), "-e", "SELECT 1"], capture_output=True)
                if probe.returncode == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("mariadbd did not become ready")

    def _client(self) -> list[str]:
        return ["mariadb", "--no-defaults", f"--socket={self.socket_path}", "-uroot"]

    def sql(self, statements: str) -> str:
        """Run statements as the server's root (over its socket); their output as text."""
        done = subprocess.run(
            [*self._client(), "--batch", "--skip-column-names", "-e", statements],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"mariadb: {done.stderr.strip()}")
        return done.stdout

    def new_database(self, prefix: str = "bridge") -> str:
        """An empty database of its own; its name (unique across processes sharing the server)."""
        name = f"{prefix}_{next(self._names)}_{uuid.uuid4().hex[:12]}"
        self.sql(f"CREATE DATABASE {name}")
        return name

    def url(self, database: str) -> str:
        return f"mysql://{USER}@127.0.0.1:{self.port}/{database}"

    def stop(self, *, keep_data: bool = False) -> None:
        if self.process is None:
            return  # attached: its starter stops it
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not keep_data:
            with contextlib.suppress(OSError):
                shutil.rmtree(self.directory / "data")


def _run_server(
    directory: Path, port: int, extra_options: tuple[str, ...]
) -> subprocess.Popen[bytes]:
    as_root = ("--user=root",) if os.geteuid() == 0 else ()
    log = open(directory / "server.log", "ab")  # noqa: SIM115 - the server's own log
    return subprocess.Popen(
        [
            "mariadbd",
            "--no-defaults",
            f"--datadir={directory / 'data'}",
            f"--tmpdir={directory / 'tmp'}",
            f"--socket={directory / 'mysqld.sock'}",
            f"--pid-file={directory / 'mysqld.pid'}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            *_SERVER_OPTIONS,
            *extra_options,
            *as_root,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def main(arguments: list[str]) -> None:
    """`start DIR` starts a server that outlives this process; `stop DIR` stops it."""
    action, directory = arguments[0], Path(arguments[1])
    if action == "start":
        MariaDB.start(directory)
    elif action == "stop":
        pid = int((directory / "mysqld.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.1)
        shutil.rmtree(directory, ignore_errors=True)
    else:
        raise SystemExit("usage: python tests/mariadb.py start|stop DIR")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
