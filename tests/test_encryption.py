"""Encryption at rest: the round trip, key rotation, and clear errors for a wrong key."""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bridge.app import create_app
from bridge.cli import main
from bridge.config import ConfigError, parse_config
from bridge.encryption import PayloadCipher, PayloadKeyError, load_key, open_plain

from support import CUSTOMER_EMAIL, callback_body, config_document, signed_headers, to_toml

KEY_A, KEY_B = os.urandom(32), os.urandom(32)


def test_round_trip_hides_the_payload() -> None:
    cipher = PayloadCipher(KEY_A)
    payload = callback_body()
    sealed = cipher.seal(payload)
    assert CUSTOMER_EMAIL.encode() not in sealed
    assert sealed != cipher.seal(payload)  # a fresh nonce each time
    assert cipher.open(sealed) == payload


def test_rotation_reads_old_payloads_and_seals_with_the_new_key() -> None:
    sealed_with_a = PayloadCipher(KEY_A).seal(b"old")
    rotated = PayloadCipher(KEY_B, previous=[KEY_A])
    assert rotated.open(sealed_with_a) == b"old"
    assert PayloadCipher(KEY_B).open(rotated.seal(b"new")) == b"new"


def test_a_missing_key_is_named_in_the_error() -> None:
    sealed = PayloadCipher(KEY_A).seal(b"x")
    with pytest.raises(PayloadKeyError, match="not configured: keep earlier keys"):
        PayloadCipher(KEY_B).open(sealed)
    with pytest.raises(PayloadKeyError, match=r"no storage\.encryption_key_file is configured"):
        open_plain(sealed)


def test_a_tampered_payload_fails_its_integrity_check() -> None:
    sealed = bytearray(PayloadCipher(KEY_A).seal(b"payload"))
    sealed[-1] ^= 1
    with pytest.raises(PayloadKeyError, match="integrity"):
        PayloadCipher(KEY_A).open(bytes(sealed))


def test_plain_payloads_from_before_encryption_are_read_as_they_are() -> None:
    assert PayloadCipher(KEY_A).open(b'{"status":"confirmed"}') == b'{"status":"confirmed"}'


@pytest.mark.parametrize("encode", [lambda k: base64.b64encode(k).decode() + "\n", bytes.hex])
def test_key_files_in_base64_or_hex(tmp_path: Path, encode: Any) -> None:
    (tmp_path / "key").write_text(encode(KEY_A))
    assert load_key(tmp_path / "key") == KEY_A


def test_a_bad_key_file_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "short").write_text(base64.b64encode(b"too short").decode())
    document = config_document(tmp_path / "db")
    document["storage"]["encryption_key_file"] = "short"
    with pytest.raises(ConfigError) as caught:
        parse_config(document, base_dir=tmp_path)
    assert caught.value.problems[0].startswith("storage.encryption_key_file: ")
    assert "32-byte key" in caught.value.problems[0]


async def test_stored_payloads_are_sealed_and_admin_commands_open_them(
    aiohttp_client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "payload_key").write_text(base64.b64encode(KEY_A).decode())
    database = tmp_path / "bridge.sqlite3"
    document = config_document(database)
    document["storage"]["encryption_key_file"] = str(credentials / "payload_key")
    config_path = tmp_path / "config.toml"
    config_path.write_text(to_toml(document))
    client = await aiohttp_client(create_app(parse_config(document, base_dir=tmp_path)))

    body = callback_body(order_id="sealed")
    answer = await (
        await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    ).json()
    with sqlite3.connect(database) as connection:
        (stored,) = connection.execute("SELECT payload FROM events").fetchone()
    assert CUSTOMER_EMAIL.encode() not in stored and stored.startswith(b"CBE1")
    # Dedupe works on the plain body, not the sealed one.
    again = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    assert (await again.json())["status"] == "duplicate"

    event_id = str(answer["event_id"])
    # The admin commands run asyncio themselves: call them from a thread.
    assert (
        await asyncio.to_thread(main, ["events", "--config", str(config_path), "show", event_id])
        == 0
    )
    assert CUSTOMER_EMAIL in capsys.readouterr().out
    assert (
        await asyncio.to_thread(main, ["events", "--database", str(database), "show", event_id])
        == 1
    )
    assert "no storage.encryption_key_file is configured" in capsys.readouterr().err
