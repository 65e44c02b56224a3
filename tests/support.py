"""Test helpers: the stores the tests configure, signed callbacks, the session's log sink,
and the skips CI must not take.
"""

from __future__ import annotations

import io
import json
import os
import tomllib
import uuid
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from bridge.signature import sign

MAIN_STORE_ID = "3ac0d5b2-1f7e-4a8e-9d0c-7d2e41ad4e9e"
SECOND_STORE_ID = "9b1e2f70-5c1d-4c0b-8f3e-2a6d9e4b7c11"
MAIN_SECRET = "whsec_main_1f0c6a9d2e7b4c3a"
SECOND_SECRET = "whsec_second_8e2d4b6f0a1c3e5d"
CUSTOMER_EMAIL = "maria.silva.customer@example.org"
CUSTOMER_NAME = "Maria Customer-Silva"

# Every secret a test configures, for the end-of-session log scan.
CONFIGURED_SECRETS: set[str] = {MAIN_SECRET, SECOND_SECRET}


class LogSink(io.TextIOBase):
    """Where every log line of the session goes."""

    def __init__(self) -> None:
        self.text = io.StringIO()

    def write(self, data: str) -> int:
        return self.text.write(data)

    def isatty(self) -> bool:
        return False

    def getvalue(self) -> str:
        return self.text.getvalue()

    def add(self, captured: str) -> None:
        """Add output captured from a daemon process."""
        self.text.write(captured if captured.endswith("\n") else captured + "\n")


SESSION_LOGS = LogSink()


def config_document(database: Path, **overrides: Any) -> dict[str, Any]:
    """A valid config with two stores; `overrides` replace whole top-level sections."""
    document: dict[str, Any] = {
        "server": {"listen": "127.0.0.1:0", "max_body_bytes": 4096},
        "storage": {"path": str(database), "busy_timeout_ms": 200},
        "logging": {"format": "json", "level": "debug"},
        "stores": [
            {
                "name": "main",
                "cryptum_store_id": MAIN_STORE_ID,
                "webhook_secret": MAIN_SECRET,
                "woocommerce": {
                    "url": "http://127.0.0.1:9",  # nothing listens: deliveries fail fast
                    "consumer_key": "ck_main_key_value",
                    "consumer_secret": "cs_main_secret_value",
                },
            },
            {
                "name": "second",
                "cryptum_store_id": SECOND_STORE_ID,
                "webhook_secret": SECOND_SECRET,
                "woocommerce": {
                    "url": "https://127.0.0.1:9",
                    "consumer_key": "ck_second_key_value",
                    "consumer_secret": "cs_second_secret_value",
                },
            },
        ],
    }
    CONFIGURED_SECRETS.update(
        {
            "ck_main_key_value",
            "cs_main_secret_value",
            "ck_second_key_value",
            "cs_second_secret_value",
        }
    )
    document.update(overrides)
    return document


def callback_body(
    *,
    order_id: str | None = None,
    woo_order_id: str = "101",
    status: str = "confirmed",
    store_id: str = MAIN_STORE_ID,
    pretty: bool = False,
    **extra: Any,
) -> bytes:
    """A Cryptum-shaped callback body; it carries customer data as unknown fields may."""
    document = {
        "message": "Payment was successful",
        "status": status,
        "orderId": order_id or str(uuid.uuid4()),
        "ecommerceOrderId": woo_order_id,
        "storeId": store_id,
        "transactions": [{"protocol": "CELO", "hash": "0x" + uuid.uuid4().hex * 2}],
        "updatedProducts": None,
        "deliveryInfo": {"name": CUSTOMER_NAME, "email": CUSTOMER_EMAIL},
        **extra,
    }
    return json.dumps(document, indent=2 if pretty else None).encode()


def signed_headers(body: bytes, secret: str = MAIN_SECRET) -> dict[str, str]:
    return {"X-Webhook-Signature": sign(body, secret), "Content-Type": "application/json"}


def write_config(tmp_path: Path, **overrides: Any) -> Path:
    document = config_document(tmp_path / "state" / "bridge.sqlite3", **overrides)
    path = tmp_path / "config.toml"
    path.write_text(to_toml(document))
    return path


def to_toml(document: dict[str, Any]) -> str:
    """Enough TOML for the test configs (tables, arrays of tables, scalars)."""
    lines: list[str] = []

    def table(prefix: str, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if isinstance(value, dict):
                for inner_key, inner in value.items():
                    lines.append(f"{key}.{inner_key} = {json.dumps(inner)}")
            else:
                lines.append(f"{key} = {json.dumps(value)}")

    for key, value in document.items():
        if isinstance(value, list):
            for item in value:
                lines.append(f"[[{key}]]")
                table(key, item)
        else:
            lines.append(f"[{key}]")
            table(key, value)
    text = "\n".join(lines) + "\n"
    assert tomllib.loads(text) == document
    return text


# The tools `.ci/run` installs, each with the Debian package it comes from.
CI_TOOLS = {
    "php": "php-cli",
    "phpunit": "phpunit",
    "systemd-analyze": "systemd",
    "mariadbd": "mariadb-server",
}
ROOT_NEEDED = "needs root: "


def tool_missing(tool: str) -> str:
    """The reason to skip a test for want of `tool`, one of `CI_TOOLS`."""
    return f"{tool} not on PATH: install {CI_TOOLS[tool]}"


def root_needed(why: str) -> str:
    """The reason to skip a test that needs root (CI runs as root)."""
    return ROOT_NEEDED + why


def ci_should_have(reason: str) -> bool:
    """Whether a skip for `reason` means CI lacks something it is meant to provide."""
    return reason in {tool_missing(tool) for tool in CI_TOOLS} or reason.startswith(ROOT_NEEDED)


@pytest.hookimpl(wrapper=True)
def fail_skips_ci_must_not_take(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A `pytest_runtest_makereport`: with CI=true, such a skip fails the test instead.

    Else a CI machine without php or systemd-analyze, or not running as root,
    would pass while never running the tests that need them.
    """
    report = yield
    if os.environ.get("CI") != "true" or not report.skipped or hasattr(report, "wasxfail"):
        return report
    assert isinstance(report.longrepr, tuple)  # how pytest reports a skip
    reason = report.longrepr[2].removeprefix("Skipped: ")
    if ci_should_have(reason):
        report.outcome = "failed"
        report.longrepr = f"CI=true, but skipped: {reason}"
    return report
