"""The database server going away under a running bridge: 503s and a failing /readyz, never
a 2xx for what is not stored; everything acknowledged stays; it recovers on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.app import create_app
from bridge.config import parse_config

from engines import mariadb_settings, storage_document
from mariadb import MariaDB
from support import callback_body, config_document, signed_headers


@pytest.fixture
def own_server(tmp_path_factory: pytest.TempPathFactory, mariadb: MariaDB) -> Iterator[MariaDB]:
    """A server of this test's own (the session's is shared), to stop and start again."""
    server = MariaDB.start(tmp_path_factory.mktemp("mariadb-outage"))
    yield server
    server.stop()


async def post(client: Any, order_id: str) -> int:
    body = callback_body(order_id=order_id)
    response = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    if response.status == 503:
        assert await response.json() == {"error": "unavailable"}
    return int(response.status)


async def test_a_stopped_database_is_a_503_until_it_is_back(
    aiohttp_client: Any, own_server: MariaDB, tmp_path: Path
) -> None:
    settings = mariadb_settings(own_server)
    document = config_document(tmp_path / "unused.sqlite3")
    document["storage"] = storage_document(settings)
    client = await aiohttp_client(
        create_app(parse_config(document, base_dir=tmp_path), background=False)
    )
    assert await post(client, "before") == 200

    own_server.stop(keep_data=True)
    assert await post(client, "during") == 503
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert "mysql_connection_lost" in str(await ready.json())

    own_server.restart()
    assert await post(client, "after") == 200
    # Readiness is probed at most every 2 s: it turns ready at the next probe.
    for _ in range(50):
        if (await client.get("/readyz")).status == 200:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("/readyz stayed 503 with the database back")
    stored = own_server.sql(f"SELECT cryptum_order_id FROM {settings.mysql.database}.events")
    assert sorted(stored.split()) == ["after", "before"]
