"""Both storage engines for the tests: a SQLite file, or a database on a throwaway MariaDB.

`mariadb` starts one server for the whole test session, the first time a
test asks for it; each test then gets an empty database of its own.
`storage_settings` runs a test once per engine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.config import StorageConfig
from bridge.storage import SqliteStorage, Storage
from bridge.storage.mysql import MysqlStorage

from mariadb import PASSWORD, REUSE_VARIABLE, MariaDB, mariadb_available
from support import tool_missing

ENGINES = ("sqlite", "mariadb")


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    """A MariaDB server of the test session's own, on 127.0.0.1."""
    if not mariadb_available():
        pytest.skip(tool_missing("mariadbd"))
    running = os.environ.get(REUSE_VARIABLE)
    if running:
        yield MariaDB.attach(Path(running))
        return
    server = MariaDB.start(tmp_path_factory.mktemp("mariadb"))
    yield server
    server.stop()


def mariadb_settings(server: MariaDB, **options: object) -> StorageConfig:
    """Storage settings for an empty database of its own on `server`."""
    return StorageConfig.model_validate(
        {"url": server.url(server.new_database()), "password": PASSWORD, **options}
    )


def storage_document(settings: StorageConfig) -> dict[str, object]:
    """The `[storage]` table of a config file that names the same storage."""
    if settings.url is None:
        return {"path": str(settings.database_path)}
    return {"url": settings.url, "password": PASSWORD}


@pytest.fixture(params=ENGINES)
def storage_settings(request: pytest.FixtureRequest, tmp_path: Path) -> StorageConfig:
    """Storage settings for a new, empty storage: run once per engine."""
    if request.param == "sqlite":
        return StorageConfig(path=tmp_path / "bridge.sqlite3")
    server: MariaDB = request.getfixturevalue("mariadb")
    return mariadb_settings(server)


async def sql(database: Storage, statement: str, *parameters: Any) -> list[tuple[Any, ...]]:
    """Run `statement` (with `?` placeholders) on either engine, below the interface."""
    if isinstance(database, SqliteStorage):
        rows = await database._connection.execute_fetchall(statement, parameters)
        return [tuple(row) for row in rows]
    assert isinstance(database, MysqlStorage)

    async def work(cursor: Any) -> list[tuple[Any, ...]]:
        await cursor.execute(statement.replace("?", "%s"), parameters)
        return list(await cursor.fetchall())

    return await database._pool.transaction(work)
