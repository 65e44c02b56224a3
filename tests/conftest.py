"""Shared fixtures: a real bridge app over a temporary SQLite file, signed callbacks, logs.

Every log line the suite produces, in this process and in the daemons it
starts, is kept; at the end of the session none may contain a configured
secret or a customer's e-mail address.

With CI=true, a test skipped for want of a tool CI installs (php, phpunit,
systemd-analyze) or of root fails instead (`support.fail_skips_ci_must_not_take`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.app import create_app
from bridge.config import Config, LoggingConfig, parse_config
from bridge.log_setup import configure_logging

from payment_world import World
from support import (
    CONFIGURED_SECRETS,
    CUSTOMER_EMAIL,
    CUSTOMER_NAME,
    SESSION_LOGS,
    config_document,
    fail_skips_ci_must_not_take,
)

pytest_runtest_makereport = fail_skips_ci_must_not_take
pytest_plugins = ["engines"]


@pytest.fixture(scope="session", autouse=True)
def no_secret_or_personal_data_in_logs() -> Iterator[None]:
    configure_logging(LoggingConfig(format="json", level="debug"), stream=SESSION_LOGS)
    yield
    text = SESSION_LOGS.getvalue()
    leaked = [
        value for value in CONFIGURED_SECRETS | {CUSTOMER_EMAIL, CUSTOMER_NAME} if value in text
    ]
    assert not leaked, f"{len(leaked)} secret or personal value(s) reached the logs"


@pytest.fixture
def logs() -> Callable[[], list[dict[str, Any]]]:
    """The JSON log lines written since the test started."""
    start = len(SESSION_LOGS.getvalue())

    def read() -> list[dict[str, Any]]:
        lines = SESSION_LOGS.getvalue()[start:].splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    return read


@pytest.fixture
def database_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "bridge.sqlite3"


@pytest.fixture
def config(database_path: Path, tmp_path: Path) -> Config:
    return parse_config(config_document(database_path), base_dir=tmp_path)


@pytest.fixture
async def client(aiohttp_client: Any, config: Config) -> Any:
    """A test client for the bridge served on 127.0.0.1 over a fresh database."""
    return await aiohttp_client(create_app(config))


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """The bridge, the simulated Cryptum and the simulated shop, on a virtual clock."""
    started = World(tmp_path)
    await started.start()
    yield started
    await started.close()
