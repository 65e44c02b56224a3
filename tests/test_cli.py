"""The admin commands, run in-process through `main()` over a real database."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bridge.app import create_app
from bridge.cli import main
from bridge.config import load_config

from support import (
    MAIN_SECRET,
    callback_body,
    config_document,
    signed_headers,
    to_toml,
    write_config,
)

VECTORS = json.loads(
    (Path(__file__).parent / "vectors" / "cryptum-signature-vectors.json").read_text()
)


def run(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str, str]:
    code = main(list(arguments))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_check_config_masks_every_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    code, out, _ = run(capsys, "check-config", "--config", str(config))
    assert code == 0
    assert "OK" in out.splitlines()[0]
    summary = json.loads(out.split("\n", 1)[1])
    assert summary["stores"][0]["webhook_secret"] == "**********"
    for secret in (MAIN_SECRET, "ck_main_key_value", "cs_main_secret_value"):
        assert secret not in out


def test_check_config_reports_every_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[server]\nlisten = "nowhere"\n[[stores]]\nname = "main"\ncryptum_store_id = "x"\n'
        'webhook_secret = "s"\nwoocommerce.url = "ftp://shop"\n'
        'woocommerce.consumer_key = "k"\nwoocommerce.consumer_secret = "c"\n'
    )
    code, out, err = run(capsys, "check-config", "--config", str(config))
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        'server.listen: must be "host:port" or "unix:/path/to/socket"',
        "stores[0].woocommerce.url: must be an http:// or https:// URL with no query or fragment",
    ]


def test_check_config_warns_of_a_short_webhook_secret_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = config_document(tmp_path / "bridge.sqlite3")
    document["stores"][1]["webhook_secret"] = "short-Qx9"
    config = tmp_path / "config.toml"
    config.write_text(to_toml(document))
    code, out, err = run(capsys, "check-config", "--config", str(config))
    assert code == 0
    assert "OK" in out.splitlines()[0]
    json.loads(out.split("\n", 1)[1])  # stdout is still the summary alone
    assert err.splitlines() == [
        "warning: stores[1].webhook_secret: shorter than 16 characters; use a long random secret"
    ]
    assert "Qx9" not in out + err


def test_check_config_warns_of_nothing_for_long_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "check-config", "--config", str(write_config(tmp_path)))
    assert (code, err) == (0, "")


def test_check_config_refuses_an_empty_secret_naming_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = config_document(tmp_path / "bridge.sqlite3")
    document["stores"][0]["webhook_secret"] = ""
    config = tmp_path / "config.toml"
    config.write_text(to_toml(document))
    code, out, err = run(capsys, "check-config", "--config", str(config))
    assert (code, out) == (2, "")
    assert err.splitlines() == ["stores[0].webhook_secret: must not be empty"]


def test_config_path_comes_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRYPTUM_BRIDGE_CONFIG", str(write_config(tmp_path)))
    code, out, _ = run(capsys, "check-config")
    assert code == 0 and str(tmp_path) in out


@pytest.mark.parametrize("vector", VECTORS["positive"], ids=lambda v: v["name"])
def test_sign_prints_the_header_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], vector: dict[str, Any]
) -> None:
    (tmp_path / "body.json").write_text(vector["body"], encoding="utf-8")
    (tmp_path / "secret").write_text(vector["secret"] + "\n")
    code, out, _ = run(
        capsys, "sign", "--secret-file", str(tmp_path / "secret"), str(tmp_path / "body.json")
    )
    assert code == 0
    assert out.strip() == vector["signature"]


def test_sign_with_a_configured_store_reads_stdin(tmp_path: Path) -> None:
    body = callback_body()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge",
            "sign",
            "--config",
            str(write_config(tmp_path)),
            "--store",
            "main",
        ],
        input=body,
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert result.stdout.decode().strip() == signed_headers(body)["X-Webhook-Signature"]


async def _post_through_the_app(config_path: Path, body: bytes) -> dict[str, Any]:
    async with TestClient(TestServer(create_app(load_config(config_path)))) as client:
        response = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
        return await response.json()


def test_events_list_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_path = write_config(tmp_path)
    body = callback_body(order_id="cli-order", woo_order_id="555")
    answer = asyncio.run(_post_through_the_app(config_path, body))

    code, out, _ = run(capsys, "events", "--config", str(config_path), "list")
    assert code == 0
    header, row = out.splitlines()
    assert header.split()[:3] == ["ID", "RECEIVED", "(UTC)"]
    assert row.split()[0] == str(answer["event_id"])
    assert "cli-order" in row and "555" in row and "pending" in row

    code, out, _ = run(capsys, "events", "--config", str(config_path), "--json", "list")
    (listed,) = json.loads(out)
    assert listed["cryptum_order_id"] == "cli-order"
    assert listed["delivery"]["state"] == "pending"

    code, out, _ = run(
        capsys, "events", "--config", str(config_path), "--json", "show", str(answer["event_id"])
    )
    shown = json.loads(out)
    assert shown["payload"] == json.loads(body)
    assert shown["signature_form"] == "json"

    code, out, _ = run(
        capsys, "events", "--config", str(config_path), "show", str(answer["event_id"])
    )
    assert "cli-order" in out and "payload:" in out

    code, _, err = run(capsys, "events", "--config", str(config_path), "show", "999")
    assert code == 1 and "no event 999" in err


def test_events_without_a_database_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "events", "--database", str(tmp_path / "none.sqlite3"), "list")
    assert code == 1
    assert "no database" in err


async def _dead_deliveries(database_path: Path, count: int) -> list[int]:
    import hashlib

    from bridge.delivery_queue import DeliveryQueue
    from bridge.storage import Database, NewEvent

    database = await Database.open(database_path)
    try:
        queue = DeliveryQueue(database)
        for number in range(count):
            await database.record_event(
                NewEvent(
                    store="main",
                    body_sha256=hashlib.sha256(str(number).encode()).digest(),
                    source="callback",
                    signature_form="json",
                    request_id=None,
                    cryptum_order_id=f"dead-{number}",
                    woo_order_id=str(900 + number),
                    status="confirmed",
                    payload=b"{}",
                )
            )
        jobs = await queue.claim("main", count, now=4e9, lease_seconds=60)
        for job in jobs:
            await queue.finish(job.delivery_id, "dead", "order not found in WooCommerce", now=4e9)
        return [job.delivery_id for job in jobs]
    finally:
        await database.close()


def test_dead_letter_list_retry_and_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "bridge.sqlite3"
    first, second, third = asyncio.run(_dead_deliveries(database, 3))
    db = ["--database", str(database)]

    code, out, _ = run(capsys, "dead-letter", *db, "list")
    assert code == 0
    assert out.count("order not found in WooCommerce") == 3

    code, out, _ = run(capsys, "dead-letter", *db, "retry", str(first))
    assert (code, out.strip()) == (0, "1 deliveries queued again")
    code, _, err = run(capsys, "dead-letter", *db, "retry", str(first))
    assert code == 1 and f"no dead delivery {first}" in err
    code, _, err = run(capsys, "dead-letter", *db, "retry")
    assert code == 2 and "DELIVERY_ID or --all" in err
    code, out, _ = run(capsys, "dead-letter", *db, "retry", "--all")
    assert (code, out.strip()) == (0, "2 deliveries queued again")

    code, out, _ = run(capsys, "deliveries", *db, "--json", "list", "--state", "pending")
    pending = json.loads(out)
    assert sorted(row["id"] for row in pending) == [first, second, third]
    assert all(row["attempts"] == 0 and row["outcome"] is None for row in pending)

    code, _, err = run(capsys, "replay", *db, str(pending[0]["event_id"]))
    assert code == 1 and "still pending" in err

    code, out, _ = run(capsys, "deliveries", *db, "show", str(first))
    assert code == 0 and "state:" in out and "pending" in out
    code, _, err = run(capsys, "deliveries", *db, "show", "424242")
    assert code == 1 and "no delivery 424242" in err


def test_stats_counts_deliveries_by_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "bridge.sqlite3"
    asyncio.run(_dead_deliveries(database, 2))
    code, out, _ = run(capsys, "stats", "--database", str(database), "--json")
    assert code == 0
    figures = json.loads(out)
    assert figures["events"] == 2
    assert figures["deliveries"] == {"pending": 0, "done": 0, "skipped": 0, "dead": 2}
    assert figures["oldest_pending_age_seconds"] is None
    code, out, _ = run(capsys, "stats", "--database", str(database))
    assert "deliveries dead:" in out and "oldest pending:       -" in out


# Control characters from callbacks and shops, shown escaped in tables and text.
HOSTILE_ORDER = "evil\n1  2026-01-01 00:00:00  main  forged\r\x1b[31m\x00\x85\u2028\u202e"
CONTROLS = ("\n", "\r", "\x1b", "\x00", "\x85", "\u2028", "\u202e")


def assert_shown_escaped(text: str) -> None:
    """No raw control character on any line; the hostile value is there, escaped."""
    assert not any(character in line for line in text.splitlines() for character in CONTROLS)
    assert "evil\\n1  2026-01-01 00:00:00  main  forged\\r\\x1b[31m\\x00\\x85\\u2028\\u202e" in text


def test_render_table_keeps_one_row_per_line() -> None:
    from bridge.admin import render_table

    table = render_table(["ID", "ORDER"], [["1", "a\nb\x1b[31m"], ["2", "plain"]])
    assert table.splitlines() == ["ID  ORDER", "1   a\\nb\\x1b[31m", "2   plain"]


def test_events_list_and_show_escape_control_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = write_config(tmp_path)
    body = callback_body(order_id=HOSTILE_ORDER, woo_order_id="556")
    answer = asyncio.run(_post_through_the_app(config_path, body))
    assert answer["status"] == "accepted"
    config = ["--config", str(config_path)]

    code, out, _ = run(capsys, "events", *config, "list")
    assert code == 0
    assert len(out.splitlines()) == 2  # the header and one row
    assert_shown_escaped(out)

    code, out, _ = run(capsys, "events", *config, "show", str(answer["event_id"]))
    assert code == 0
    assert_shown_escaped(out)

    code, out, _ = run(capsys, "events", *config, "--json", "list")
    (listed,) = json.loads(out)
    assert listed["cryptum_order_id"] == HOSTILE_ORDER
    code, out, _ = run(capsys, "events", *config, "--json", "show", str(answer["event_id"]))
    assert json.loads(out)["cryptum_order_id"] == HOSTILE_ORDER


async def _dead_delivery_with_hostile_text(database_path: Path) -> int:
    from bridge.delivery_queue import DeliveryQueue
    from bridge.storage import Database, NewEvent

    database = await Database.open(database_path)
    try:
        await database.record_event(
            NewEvent(
                store="main",
                body_sha256=b"\x01" * 32,
                source="callback",
                signature_form="json",
                request_id=None,
                cryptum_order_id=HOSTILE_ORDER,
                woo_order_id="901",
                status="confirmed",
                payload=b"{}",
            )
        )
        queue = DeliveryQueue(database)
        (job,) = await queue.claim("main", 1, now=4e9, lease_seconds=60)
        await queue.finish(job.delivery_id, "dead", f"shop said {HOSTILE_ORDER}", now=4e9)
        return job.delivery_id
    finally:
        await database.close()


def test_deliveries_and_dead_letter_escape_control_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "bridge.sqlite3"
    delivery_id = asyncio.run(_dead_delivery_with_hostile_text(database))
    db = ["--database", str(database)]

    for command in (("dead-letter", *db, "list"), ("deliveries", *db, "list")):
        code, out, _ = run(capsys, *command)
        assert code == 0
        assert len(out.splitlines()) == 2
        assert_shown_escaped(out)

    code, out, _ = run(capsys, "deliveries", *db, "show", str(delivery_id))
    assert code == 0
    assert_shown_escaped(out)

    code, out, _ = run(capsys, "deliveries", *db, "--json", "show", str(delivery_id))
    assert json.loads(out)["outcome"] == f"shop said {HOSTILE_ORDER}"
