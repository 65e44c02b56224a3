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
from bridge.config import StorageConfig, load_config
from bridge.storage import NewEvent, open_storage

from engines import mariadb_settings, storage_document
from mariadb import PASSWORD, MariaDB
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

    from bridge.storage import NewEvent, SqliteStorage

    database = await SqliteStorage.open(database_path)
    try:
        queue = database
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
    from bridge.storage import NewEvent, SqliteStorage

    database = await SqliteStorage.open(database_path)
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
        queue = database
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


# Options before or after the action, at any level


def _with_one_event(tmp_path: Path) -> Path:
    config_path = write_config(tmp_path)
    body = callback_body(order_id="anywhere-order", woo_order_id="557")
    asyncio.run(_post_through_the_app(config_path, body))
    return config_path


@pytest.mark.parametrize(
    "arguments",
    [
        ["events", "list", "--json", "--config", "{config}"],
        ["--config", "{config}", "events", "list", "--json"],
        ["events", "--json", "list", "--config", "{config}"],
        ["events", "--config", "{config}", "--json", "list"],
        ["events", "list", "--config", "{config}", "--json", "--limit", "5"],
        ["deliveries", "list", "--config", "{config}", "--json"],
        ["deliveries", "--config", "{config}", "list", "--state", "pending", "--json"],
        ["dead-letter", "list", "--json", "--config", "{config}"],
        ["stats", "--json", "--config", "{config}"],
        ["--config", "{config}", "stats", "--json"],
        ["events", "list", "--json", "--database", "{database}"],
        [
            "--config",
            "/nonexistent/config.toml",
            "events",
            "list",
            "--json",
            "--config",
            "{config}",
        ],
    ],
    ids=lambda arguments: " ".join(arguments),
)
def test_options_are_accepted_before_or_after_the_action(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str]
) -> None:
    config_path = _with_one_event(tmp_path)
    database = tmp_path / "state" / "bridge.sqlite3"
    argv = [a.format(config=config_path, database=database) for a in arguments]
    code, out, err = run(capsys, *argv)
    assert (code, err) == (0, "")
    listed = json.loads(out)  # --json took effect wherever it was given
    if argv[0] == "stats" or argv[2] == "stats":
        assert listed["events"] == 1
    elif "dead-letter" in argv:
        assert listed == []
    else:
        assert [row["woo_order_id"] for row in listed] == ["557"]


def test_an_option_given_at_one_level_is_not_undone_by_another(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = _with_one_event(tmp_path)
    # --json before the action, --config after it, and neither resets the other.
    code, out, _ = run(capsys, "events", "--json", "list", "--config", str(config_path))
    assert code == 0 and json.loads(out)[0]["woo_order_id"] == "557"
    code, out, _ = run(capsys, "--config", str(config_path), "events", "list")
    assert code == 0 and out.startswith("ID")


@pytest.mark.parametrize(
    "arguments",
    [
        ["dead-letter", "retry", "--all", "--config", "{config}"],
        ["dead-letter", "--config", "{config}", "retry", "--all"],
        ["--config", "{config}", "dead-letter", "retry", "--all"],
    ],
    ids=lambda arguments: " ".join(arguments),
)
def test_dead_letter_retry_all_takes_config_anywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str]
) -> None:
    config_path = write_config(tmp_path)
    asyncio.run(_dead_deliveries(tmp_path / "state" / "bridge.sqlite3", 2))
    code, out, err = run(capsys, *[a.format(config=config_path) for a in arguments])
    assert (code, out.strip(), err) == (0, "2 deliveries queued again", "")


def test_every_command_takes_config_after_its_arguments(tmp_path: Path) -> None:
    from bridge.cli import parse_arguments

    config = str(tmp_path / "config.toml")
    for argv in (
        ["serve"],
        ["check-config"],
        ["doctor"],
        ["replay", "3"],
        ["send-test", "--store", "main", "--order", "1", "--status", "pending"],
        ["sign", "--store", "main"],
        ["events", "show", "1"],
        ["deliveries", "show", "1"],
    ):
        assert parse_arguments([*argv, "--config", config]).config == Path(config), argv
        assert parse_arguments(["--config", config, *argv]).config == Path(config), argv


# check-config reports every problem at once


def test_check_config_reports_two_independent_problems_of_one_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = config_document(tmp_path / "bridge.sqlite3")
    document["stores"][0]["woocommerce"]["url"] = "ftp://shop"  # a key's own check
    del document["stores"][1]["webhook_secret"]  # a check across keys
    document["stores"][1]["cryptum_api_key"] = ""
    config = tmp_path / "config.toml"
    config.write_text(to_toml(document))
    code, out, err = run(capsys, "check-config", "--config", str(config))
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "stores[0].woocommerce.url: must be an http:// or https:// URL with no query or fragment",
        "stores[1].cryptum_api_key: must not be empty",
        "stores[1]: webhook_secret (or webhook_secret_file) is required",
    ]


def test_check_config_refuses_the_examples_placeholders_by_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    code, out, err = run(capsys, "check-config", "--config", str(example))
    assert (code, out) == (2, "")
    assert [line.split(":")[0] for line in err.splitlines()] == [
        "stores[0].webhook_secret",
        "stores[0].woocommerce.consumer_key",
        "stores[0].woocommerce.consumer_secret",
    ]
    assert all("still the example's placeholder; set the" in line for line in err.splitlines())


def test_serve_refuses_the_examples_placeholders_with_exit_2(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "serve", "--config", str(example)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == (
        "stores[0].webhook_secret: still the example's placeholder; "
        "set the secret from the Cryptum dashboard"
    )
    assert not (tmp_path / "bridge.sqlite3").exists()  # refused before opening anything


# replay and dead-letter retry keep the earlier run's outcome


async def _finished_then_replayed(database_path: Path) -> tuple[int, int]:
    """One delivery done, one dead; both run again and finished once more."""
    from bridge.storage import NewEvent, SqliteStorage

    database = await SqliteStorage.open(database_path)
    try:
        queue = database
        for number in (1, 2):
            await database.record_event(
                NewEvent(
                    store="main",
                    body_sha256=bytes([number]) * 32,
                    source="callback",
                    signature_form="json",
                    request_id=None,
                    cryptum_order_id=f"history-{number}",
                    woo_order_id=str(700 + number),
                    status="confirmed",
                    payload=b"{}",
                )
            )
        done, dead = await queue.claim("main", 2, now=4e9, lease_seconds=60)
        await queue.finish(done.delivery_id, "done", "pay: payment confirmed", now=4e9 + 1)
        await queue.finish(dead.delivery_id, "dead", "order not found in WooCommerce", now=4e9 + 1)
        return done.delivery_id, dead.delivery_id
    finally:
        await database.close()


async def _run_again(database_path: Path, outcomes: dict[int, tuple[str, str]]) -> None:
    """What the worker does with the requeued deliveries: finish each as told."""
    from bridge.storage import SqliteStorage

    database = await SqliteStorage.open(database_path)
    try:
        queue = database
        for job in await queue.claim("main", 10, now=5e9, lease_seconds=60):
            state, outcome = outcomes[job.delivery_id]
            await queue.finish(job.delivery_id, state, outcome, now=5e9 + 1)
    finally:
        await database.close()


def test_replay_and_retry_keep_the_earlier_outcome_in_show_and_stats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "bridge.sqlite3"
    done_id, dead_id = asyncio.run(_finished_then_replayed(database))
    db = ["--database", str(database)]
    code, out, _ = run(capsys, "deliveries", "show", str(done_id), "--json", *db)
    done_event = json.loads(out)["event_id"]

    assert run(capsys, "replay", str(done_event), *db)[0] == 0
    assert run(capsys, "dead-letter", "retry", str(dead_id), *db)[0] == 0
    asyncio.run(
        _run_again(
            database,
            {
                done_id: ("skipped", "skipped: already paid"),
                dead_id: ("done", "pay: payment confirmed"),
            },
        )
    )

    code, out, _ = run(capsys, "deliveries", "show", str(done_id), "--json", *db)
    shown = json.loads(out)
    assert (shown["state"], shown["outcome"]) == ("skipped", "skipped: already paid")
    (earlier,) = shown["earlier_runs"]
    assert (earlier["generation"], earlier["state"], earlier["outcome"], earlier["attempts"]) == (
        1,
        "done",
        "pay: payment confirmed",
        1,
    )
    code, out, _ = run(capsys, "deliveries", "show", str(dead_id), *db)
    assert "earlier runs:" in out
    (row,) = out.split("earlier runs:\n")[1].splitlines()[1:]
    assert row.split()[:3] == ["1", "dead", "1"] and "order not found in WooCommerce" in row

    code, out, _ = run(capsys, "stats", "--json", *db)
    assert code == 0
    figures = json.loads(out)
    # Two finished runs each; the first delivery's payment stays counted as done.
    assert figures["deliveries"] == {"pending": 0, "done": 2, "skipped": 1, "dead": 1}
    assert figures["dead_letters"] == 0
    _, out, _ = run(capsys, "stats", *db)
    assert "deliveries done:      2\n" in out and "dead letters now:     0\n" in out


@pytest.mark.slow
async def test_replaying_a_delivered_payment_keeps_its_done_run(tmp_path: Path) -> None:
    from bridge_simulators.woocommerce import WooCommerceSimulator

    from daemon import Bridge, wait_until

    async with WooCommerceSimulator() as shop:
        shop.add_key("ck_replay_key", "cs_replay_secret")
        shop.seed_fixture_shop()
        bridge = Bridge(tmp_path, shop, key="ck_replay_key", secret="cs_replay_secret").start()
        try:
            answer = await bridge.send(order_id="replay-12", woo_order_id="12")
            first = await bridge.settled(answer["event_id"])
            assert (first["state"], first["generation"]) == ("done", 1)

            db = ["--database", str(bridge.database)]
            code = await asyncio.to_thread(main, ["replay", str(answer["event_id"]), *db])
            assert code == 0
            await wait_until(
                lambda: (
                    bridge.delivery_of(answer["event_id"])["generation"] == 2
                    and bridge.delivery_of(answer["event_id"])["state"] != "pending"
                )
            )
        finally:
            assert bridge.stop() == 0
    shown = await asyncio.to_thread(_json_of, ["deliveries", "show", str(first["id"]), *db])
    assert shown["state"] == "skipped"  # the order is paid already: nothing to change
    (earlier,) = shown["earlier_runs"]
    assert (earlier["state"], earlier["outcome"]) == ("done", first["outcome"])
    figures = await asyncio.to_thread(_json_of, ["stats", *db])
    assert figures["deliveries"] == {"pending": 0, "done": 1, "skipped": 1, "dead": 0}


def _json_of(argv: list[str]) -> Any:
    """Run a command in a subprocess and decode its JSON output."""
    result = subprocess.run(
        [sys.executable, "-m", "bridge", *argv, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


# check-config shows the storage's engine and where it is, never its password


def test_check_config_shows_a_sqlite_storage_by_its_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "check-config", "--config", str(write_config(tmp_path)))
    storage = json.loads(out.split("\n", 1)[1])["storage"]
    assert code == 0
    assert (storage["engine"], storage["path"]) == (
        "sqlite",
        str(tmp_path / "state" / "bridge.sqlite3"),
    )


@pytest.mark.parametrize("given_as", ["password", "password_file"])
def test_check_config_shows_a_mysql_storage_by_its_url_with_the_password_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], given_as: str
) -> None:
    password = "mysql-password-Zq81"
    storage: dict[str, Any] = {"url": "mysql://bridge@127.0.0.1:9/bridge", "pool_size": 4}
    if given_as == "password":
        storage["password"] = password
    else:
        (tmp_path / "db_password").write_text(password + "\n")
        storage["password_file"] = "db_password"
    # Port 9: nothing listens, and check-config never connects.
    code, out, err = run(
        capsys, "check-config", "--config", str(write_config(tmp_path, storage=storage))
    )
    assert (code, err) == (0, "")
    shown = json.loads(out.split("\n", 1)[1])["storage"]
    assert shown["engine"] == "mysql"
    assert shown["url"] == "mysql://bridge@127.0.0.1:9/bridge"
    assert shown["password"] == "**********"
    assert "path" not in shown and "password_file" not in shown
    assert password not in out + err


def test_check_config_warns_of_mysql_without_tls_to_another_machine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = {"url": "mysql://bridge@db.invalid:3306/bridge", "password": "mysql-password-Zq81"}
    code, out, err = run(
        capsys, "check-config", "--config", str(write_config(tmp_path, storage=storage))
    )
    assert code == 0
    assert json.loads(out.split("\n", 1)[1])["storage"]["url"] == storage["url"]
    assert err.splitlines() == [
        "warning: storage.tls: off for a MySQL server on another machine; callbacks and the "
        "password cross the network in the clear"
    ]
    storage["tls"] = True  # type: ignore[assignment]
    code, _, err = run(
        capsys, "check-config", "--config", str(write_config(tmp_path, storage=storage))
    )
    assert (code, err) == (0, "")


# The admin commands on a MySQL storage: the same commands, the same answers


async def _fill_mysql(settings: StorageConfig) -> dict[str, int]:
    """Three events of store main: one delivery done, one dead, one pending; their ids."""
    storage = await open_storage(settings, clock=lambda: 4e9)
    try:
        events = {}
        for number, name in enumerate(("done", "dead", "pending")):
            recorded = await storage.record_event(
                NewEvent(
                    store="main",
                    body_sha256=bytes([number + 1]) * 32,
                    source="callback",
                    signature_form="json",
                    request_id=None,
                    cryptum_order_id=f"mysql-{name}",
                    woo_order_id=str(800 + number),
                    status="confirmed",
                    payload=json.dumps({"orderId": f"mysql-{name}"}).encode(),
                )
            )
            events[name] = recorded.event_id
        jobs = await storage.claim("main", 2, now=4e9, lease_seconds=60)
        by_event = {job.event_id: job.delivery_id for job in jobs}
        done, dead = by_event[events["done"]], by_event[events["dead"]]
        await storage.finish(
            done, "done", "pay: payment confirmed", now=4e9 + 1, applied_status="confirmed"
        )
        await storage.finish(dead, "dead", "order not found in WooCommerce", now=4e9 + 1)
        return {**events, "done delivery": done, "dead delivery": dead}
    finally:
        await storage.close()


@pytest.fixture
def mysql_config(tmp_path: Path, mariadb: MariaDB) -> tuple[Path, StorageConfig]:
    """A config whose [storage] is a database of its own on the throwaway MariaDB."""
    settings = mariadb_settings(mariadb)
    return write_config(tmp_path, storage=storage_document(settings)), settings


def test_admin_commands_list_and_show_a_mysql_storage(
    mysql_config: tuple[Path, StorageConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    config_path, settings = mysql_config
    ids = asyncio.run(_fill_mysql(settings))
    config = ["--config", str(config_path)]

    code, out, _ = run(capsys, "events", "list", *config)
    assert code == 0
    _, *rows = out.splitlines()
    assert [row.split()[0] for row in rows] == [
        str(ids[name]) for name in ("pending", "dead", "done")
    ]
    code, out, _ = run(capsys, "events", "show", str(ids["dead"]), "--json", *config)
    shown = json.loads(out)
    assert (code, shown["payload"], shown["delivery"]["state"]) == (
        0,
        {"orderId": "mysql-dead"},
        "dead",
    )
    assert run(capsys, "events", "show", "424242", *config)[:1] == (1,)

    code, out, _ = run(capsys, "deliveries", "list", "--state", "dead", "--json", *config)
    assert [row["id"] for row in json.loads(out)] == [ids["dead delivery"]]
    code, out, _ = run(capsys, "dead-letter", "list", *config)
    assert code == 0 and out.count("order not found in WooCommerce") == 1
    code, out, _ = run(capsys, "deliveries", "show", str(ids["done delivery"]), *config)
    assert code == 0 and "pay: payment confirmed" in out
    code, out, err = run(capsys, "stats", "--json", *config)
    assert json.loads(out)["deliveries"] == {"pending": 1, "done": 1, "skipped": 0, "dead": 1}
    assert PASSWORD not in out + err


def test_admin_commands_retry_and_replay_on_a_mysql_storage(
    mysql_config: tuple[Path, StorageConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    config_path, settings = mysql_config
    ids = asyncio.run(_fill_mysql(settings))
    config = ["--config", str(config_path)]

    code, out, _ = run(capsys, "dead-letter", "retry", str(ids["dead delivery"]), *config)
    assert (code, out.strip()) == (0, "1 deliveries queued again")
    code, _, err = run(capsys, "dead-letter", "retry", "--all", *config)
    assert code == 0 and err == ""
    code, out, _ = run(capsys, "replay", str(ids["done"]), *config)
    assert (code, out.strip()) == (0, f"event {ids['done']}: delivery queued again")
    code, _, err = run(capsys, "replay", str(ids["pending"]), *config)
    assert code == 1 and "still pending" in err

    code, out, _ = run(capsys, "deliveries", "show", str(ids["done delivery"]), "--json", *config)
    shown = json.loads(out)
    assert (shown["state"], shown["attempts"]) == ("pending", 0)
    (earlier,) = shown["earlier_runs"]
    assert (earlier["generation"], earlier["state"]) == (1, "done")
    code, out, _ = run(capsys, "stats", "--json", *config)
    figures = json.loads(out)
    # The runs that ended stay counted; all three deliveries wait again.
    assert figures["deliveries"] == {"pending": 3, "done": 1, "skipped": 0, "dead": 1}
    assert figures["dead_letters"] == 0


def test_an_admin_command_on_a_mysql_database_without_the_schema_says_what_to_do(
    mysql_config: tuple[Path, StorageConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    config_path, _ = mysql_config
    code, out, err = run(capsys, "stats", "--config", str(config_path))
    assert (code, out) == (1, "")
    assert "schema version 0, older than this program's" in err
    assert "cryptum-bridge serve" in err


def test_database_names_a_sqlite_file_even_beside_a_mysql_config(
    tmp_path: Path, mysql_config: tuple[Path, StorageConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    config_path, _ = mysql_config
    database = tmp_path / "bridge.sqlite3"
    asyncio.run(_dead_deliveries(database, 2))
    code, out, _ = run(
        capsys, "stats", "--json", "--config", str(config_path), "--database", str(database)
    )
    assert code == 0 and json.loads(out)["events"] == 2
