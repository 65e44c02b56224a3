"""The WordPress plugin shim: its PHPUnit suite, its version, and its relay and
admin notice in front of a real bridge.

`php -S` serves plugin-php/tests/integration/router.php, a stand-in for
WordPress that loads the plugin over small stubs; the bridge is a real
`cryptum-bridge serve` process. Each test skips only when a tool it needs is
missing, and says which: php for `php -l` and `php -S`, phpunit for the suite.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from pathlib import Path
from xml.etree import ElementTree

import pytest

from bridge import __version__

from daemon import Daemon
from support import (
    CUSTOMER_EMAIL,
    SESSION_LOGS,
    callback_body,
    config_document,
    signed_headers,
    to_toml,
    tool_missing,
    write_config,
)

pytestmark = pytest.mark.slow

PLUGIN = Path(__file__).resolve().parent.parent / "plugin-php"
WC_API_PATH = "/?wc-api=cryptumcheckout_payment_gateway"
REST_PATH = "/wp-json/cryptum-bridge/v1/callback"
NOTICES_PATH = "/wp-admin/notices"

PHP_MISSING = tool_missing("php")
PHPUNIT_MISSING = tool_missing("phpunit")
requires_php = pytest.mark.skipif(shutil.which("php") is None, reason=PHP_MISSING)
requires_phpunit = pytest.mark.skipif(shutil.which("phpunit") is None, reason=PHPUNIT_MISSING)


class Shim:
    """`php -S` on a free loopback port, serving the router with the given bridge URL."""

    def __init__(self, bridge_url: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            ["php", "-S", f"127.0.0.1:{port}", str(PLUGIN / "tests/integration/router.php")],
            cwd=PLUGIN,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "CRYPTUM_BRIDGE_URL": bridge_url},
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("php -S did not start:\n" + self.stop()) from None
                time.sleep(0.02)

    def post(
        self, path: str, body: bytes, headers: dict[str, str], method: str = "POST"
    ) -> tuple[int, bytes]:
        status, answer, _ = self.exchange(path, body, headers, method)
        return status, answer

    def exchange(
        self, path: str, body: bytes, headers: dict[str, str], method: str = "POST"
    ) -> tuple[int, bytes, Message]:
        """Status, body and headers of the shim's answer."""
        request = urllib.request.Request(self.url + path, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            return error.code, error.read(), error.headers

    def get(self, path: str) -> tuple[int, str]:
        """Status and text of a GET."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def stop(self) -> str:
        """Stop the server and return what it logged."""
        self.process.terminate()
        output, _ = self.process.communicate(timeout=10)
        return output


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[Daemon]:
    daemon = Daemon(write_config(tmp_path))
    yield daemon
    assert daemon.stop() == 0


@contextmanager
def serve_shim(bridge_url: str) -> Iterator[Shim]:
    shim = Shim(bridge_url)
    try:
        yield shim
    finally:
        log = shim.stop()
        SESSION_LOGS.add(log)
        assert CUSTOMER_EMAIL not in log


@pytest.fixture
def shim(bridge: Daemon) -> Iterator[Shim]:
    with serve_shim(bridge.url) as served:
        yield served


def stored_payload(tmp_path: Path, event_id: int) -> bytes:
    with sqlite3.connect(tmp_path / "state" / "bridge.sqlite3") as connection:
        (payload,) = connection.execute(
            "SELECT payload FROM events WHERE id = ?", (event_id,)
        ).fetchone()
    return bytes(payload)


# The first mark from the bottom decides the reason: without php, say so first.
@requires_phpunit
@requires_php
def test_phpunit_suite_passes() -> None:
    result = subprocess.run(
        ["phpunit", "-c", str(PLUGIN / "phpunit.xml.dist")],
        cwd=PLUGIN,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@requires_php
def test_every_php_file_lints() -> None:
    files = sorted(PLUGIN.rglob("*.php"))
    assert files
    for path in files:
        result = subprocess.run(["php", "-l", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


@requires_php
@pytest.mark.parametrize("path", [WC_API_PATH, REST_PATH])
def test_relay_hands_the_exact_bytes_to_the_bridge_and_returns_its_answer(
    tmp_path: Path, shim: Shim, path: str
) -> None:
    # Pretty-printed, so any re-encoding on the way would change the bytes.
    body = callback_body(pretty=True, message='Pago con "éxito" \\o/')

    status, answer = shim.post(path, body, signed_headers(body))
    assert status == 200, answer
    accepted = json.loads(answer)
    assert accepted["status"] == "accepted"
    assert stored_payload(tmp_path, accepted["event_id"]) == body

    status, answer = shim.post(path, body, signed_headers(body))
    assert status == 200
    assert json.loads(answer) == {"status": "duplicate", "event_id": accepted["event_id"]}


@requires_php
@pytest.mark.parametrize("path", [WC_API_PATH, REST_PATH])
def test_a_forged_callback_gets_the_bridges_401(shim: Shim, path: str) -> None:
    body = callback_body()
    status, answer = shim.post(path, body, signed_headers(body, secret="not-the-secret"))
    assert status == 401
    assert json.loads(answer) == {"error": "invalid_signature"}


@requires_php
@pytest.mark.parametrize("path", [WC_API_PATH, REST_PATH])
def test_an_unsigned_callback_past_the_cap_gets_the_bridges_429_and_retry_after(
    tmp_path: Path, path: str
) -> None:
    document = config_document(tmp_path / "state" / "bridge.sqlite3")
    document["stores"][0] |= {
        "allow_unsigned": True,
        "unsigned_callbacks_per_minute": 1,
        # Never asked here: the cap is checked before anything is delivered.
        "cryptum_api_key": "cryptum-api-key-relay",
    }
    config = tmp_path / "config.toml"
    config.write_text(to_toml(document))
    daemon = Daemon(config)
    try:
        with serve_shim(daemon.url) as shim:
            first = callback_body()
            status, _, _ = shim.exchange(path, first, {"Content-Type": "application/json"})
            assert status == 200
            second = callback_body()
            status, answer, headers = shim.exchange(
                path, second, {"Content-Type": "application/json"}
            )
            assert (status, json.loads(answer)) == (429, {"error": "rate_limited"})
            assert 1 <= int(headers["Retry-After"]) <= 60
    finally:
        assert daemon.stop() == 0


@requires_php
def test_options_is_answered_200_like_the_reference_plugin(shim: Shim) -> None:
    status, answer = shim.post(WC_API_PATH, b"", {}, method="OPTIONS")
    assert (status, answer) == (200, b"")


@requires_php
@pytest.mark.parametrize("path", [WC_API_PATH, REST_PATH])
def test_with_the_bridge_stopped_the_answer_is_503(tmp_path: Path, path: str) -> None:
    daemon = Daemon(write_config(tmp_path))
    bridge_url = daemon.url
    assert daemon.stop() == 0
    with serve_shim(bridge_url) as shim:
        body = callback_body()
        status, answer = shim.post(path, body, signed_headers(body))
        assert status == 503
        assert json.loads(answer) == {"error": "bridge_unreachable"}


@requires_php
def test_the_admin_notice_is_quiet_while_the_real_bridge_is_ready(shim: Shim) -> None:
    assert shim.get(NOTICES_PATH) == (200, "")


@requires_php
def test_the_admin_notice_says_what_to_do_when_the_bridge_is_stopped(tmp_path: Path) -> None:
    daemon = Daemon(write_config(tmp_path))
    bridge_url = daemon.url
    assert daemon.stop() == 0
    with serve_shim(bridge_url) as shim:
        status, html = shim.get(NOTICES_PATH)
    assert status == 200
    assert f"the bridge does not answer at <code>{bridge_url}/readyz</code>" in html
    assert "start the daemon: <code>sudo systemctl start cryptum-bridge</code>" in html
    assert "section=cryptum_bridge" in html


def header_field(pattern: str, text: str) -> str:
    found = re.search(pattern, text, re.M)
    assert found, pattern
    return found.group(1)


def test_the_plugin_carries_the_packages_version() -> None:
    main = (PLUGIN / "cryptum-bridge.php").read_text(encoding="utf-8")
    readme = (PLUGIN / "readme.txt").read_text(encoding="utf-8")

    assert header_field(r"^\s*\*\s*Version:\s*(\S+)\s*$", main) == __version__
    constant = r"define\(\s*'CRYPTUM_BRIDGE_VERSION',\s*'([^']*)'\s*\)"
    assert header_field(constant, main) == __version__
    assert header_field(r"^Stable tag:\s*(\S+)\s*$", readme) == __version__
    assert f"\n= {__version__} =\n" in readme.split("== Changelog ==", 1)[1]


def tools_only(tmp_path: Path, tools: list[str]) -> Path:
    """A directory for PATH holding links to just these tools."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for tool in tools:
        found = shutil.which(tool)
        assert found is not None, tool
        (directory / tool).symlink_to(found)
    return directory


@pytest.mark.parametrize(
    ("tools", "lint", "phpunit"),
    [
        pytest.param(
            ["php"], "passed", f"skipped: {PHPUNIT_MISSING}", marks=requires_php, id="php only"
        ),
        pytest.param([], f"skipped: {PHP_MISSING}", f"skipped: {PHP_MISSING}", id="neither"),
    ],
)
def test_a_skip_names_the_tool_that_is_missing(
    tmp_path: Path, tools: list[str], lint: str, phpunit: str
) -> None:
    report = tmp_path / "report.xml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            "-k",
            "test_every_php_file_lints or test_phpunit_suite_passes",
            __file__,
        ],
        cwd=PLUGIN.parent,
        # Without CI: there such a skip fails the run (tests/test_ci_skips.py).
        env={
            **{name: value for name, value in os.environ.items() if name != "CI"},
            "PATH": str(tools_only(tmp_path, tools)),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):
        skipped = case.find("skipped")
        outcomes[case.get("name")] = (
            "passed" if skipped is None else f"skipped: {skipped.get('message')}"
        )
    assert outcomes == {"test_every_php_file_lints": lint, "test_phpunit_suite_passes": phpunit}
