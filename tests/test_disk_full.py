"""A really full disk: a small tmpfs under the database (needs root to mount; skipped otherwise)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.app import create_app
from bridge.config import parse_config

from support import callback_body, config_document, root_needed, signed_headers

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip(root_needed("mounting a small tmpfs"))
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def stored_order_ids(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        return {row[0] for row in connection.execute("SELECT cryptum_order_id FROM events")}


async def test_a_full_disk_answers_503_and_recovers(
    aiohttp_client: Any, small_disk: Path, tmp_path: Path
) -> None:
    database = small_disk / "bridge.sqlite3"
    document = config_document(database)
    document["server"]["max_body_bytes"] = 65536
    client = await aiohttp_client(create_app(parse_config(document, base_dir=tmp_path)))

    filler = small_disk / "filler"
    descriptor = os.open(filler, os.O_CREAT | os.O_WRONLY, 0o600)
    try:  # take all the space, then give a little back
        while True:
            os.write(descriptor, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(descriptor)
    os.truncate(filler, max(0, filler.stat().st_size - 96 * 1024))

    acknowledged, refused = set(), 0
    for number in range(60):
        body = callback_body(order_id=f"full-{number}", padding="x" * 8000)
        response = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
        assert response.status in (200, 503)
        if response.status == 200:
            acknowledged.add(f"full-{number}")
        else:
            refused += 1
            assert await response.json() == {"error": "unavailable"}
    assert refused > 0, "the disk never filled up"
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert acknowledged <= stored_order_ids(database)

    filler.unlink()  # space returns
    body = callback_body(order_id="after")
    response = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    assert response.status == 200
    assert "after" in stored_order_ids(database)
