"""Log output: control characters from requests are escaped on the console, exact in JSON."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from bridge.config import LoggingConfig
from bridge.log_setup import EscapedConsoleRenderer, configure_logging, set_level

from support import SESSION_LOGS

HOSTILE = "a\nb\x1b[31m\r\x00\x85\u2028\u2029"
SHOWN = "a\\nb\\x1b[31m\\r\\x00\\x85\\u2028\\u2029"


def assert_no_control_characters(line: str) -> None:
    # The renderer's own colours are escape sequences too; the injected one is not among them.
    assert "b\x1b[31m" not in line
    assert not any(character in line for character in "\n\r\x00\x85\u2028\u2029")


STAMP = {"timestamp": "2026-01-01T00:00:00Z", "level": "info"}


def render(**event: Any) -> str:
    return EscapedConsoleRenderer(colors=False)(None, "info", {**STAMP, **event})


def test_a_value_with_control_characters_stays_on_one_line() -> None:
    line = render(event="callback.rejected", cryptum_order_id=HOSTILE, woo_order_id="a\nb\x1b[31m")
    assert_no_control_characters(line)
    assert f"cryptum_order_id='{SHOWN}'" in line
    assert "woo_order_id='a\\nb\\x1b[31m'" in line


@pytest.mark.parametrize("value", ["x\x1b[31m", "a\u2028b", "a\x85b", "\x00", "\x0bx", "\u202eab"])
def test_a_value_structlog_would_show_unquoted_is_escaped(value: str) -> None:
    line = render(event="callback.rejected", store=value)
    assert_no_control_characters(line)
    assert value not in line
    assert f"store={value.encode('unicode_escape').decode()}" in line


def test_the_message_keys_and_non_text_values_are_escaped_too() -> None:
    line = render(**{"event": "x\ny", "key\x1b": "v", "detail": {"n": "\u2028"}, "tag": None})
    assert_no_control_characters(line)
    assert "x\\ny" in line and "key\\x1b=v" in line and "tag=None" in line
    assert "detail={'n': '\\u2028'}" in line


@pytest.mark.parametrize("colors", [False, True])
def test_ordinary_values_look_as_structlog_shows_them(colors: bool) -> None:
    event = {**STAMP, "event": "delivery.retry", "store": "main", "reason": "a b", "attempt": 3}
    plain = structlog.dev.ConsoleRenderer(colors=colors)(None, "info", dict(event))
    assert EscapedConsoleRenderer(colors=colors)(None, "info", dict(event)) == plain


def test_a_traceback_keeps_its_lines_but_loses_its_escape_sequences() -> None:
    text = render(event="boom", exception="Traceback:\n  File x\nValueError: \x1b[31m\r")
    assert text.splitlines()[1:] == ["Traceback:", "  File x", "ValueError: \\x1b[31m\\r"]


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    """Logging configured as a console for the test, then back to the session's JSON sink."""
    stream = io.StringIO()
    configure_logging(LoggingConfig(format="console", level="info"), stream=stream)
    try:
        yield stream
    finally:
        configure_logging(LoggingConfig(format="json", level="debug"), stream=SESSION_LOGS)


def test_the_console_format_escapes_structlog_and_library_logs(console: io.StringIO) -> None:
    # A logger bound here, not a module's, so no cached logger keeps the console set-up.
    structlog.get_logger("test").info("callback.rejected", cryptum_order_id=HOSTILE)
    logging.getLogger("aiohttp.access").warning("request %s", HOSTILE)
    lines = console.getvalue().splitlines()
    assert len(lines) == 2
    for line in lines:
        assert_no_control_characters(line)
        assert SHOWN in line


def test_the_json_format_keeps_values_exact(logs: Callable[[], list[dict[str, Any]]]) -> None:
    structlog.get_logger("test").info("callback.rejected", cryptum_order_id=HOSTILE)
    (line,) = [line for line in logs() if line["event"] == "callback.rejected"]
    assert line["cryptum_order_id"] == HOSTILE
    text = SESSION_LOGS.getvalue()
    assert json.dumps(HOSTILE)[1:-1] in text


def test_values_the_fast_encoder_cannot_write_are_written_exactly(
    logs: Callable[[], list[dict[str, Any]]],
) -> None:
    structlog.get_logger("test").info(
        "big.values", count=2**70, pair=(1, "é"), where=Path("/srv/shop")
    )
    (line,) = [line for line in logs() if line["event"] == "big.values"]
    assert line["count"] == 2**70 and line["pair"] == [1, "é"]
    assert line["where"] == repr(Path("/srv/shop"))  # what JSON has no form for: its repr
    assert SESSION_LOGS.getvalue().isascii()


def test_every_json_line_is_plain_ascii(logs: Callable[[], list[dict[str, Any]]]) -> None:
    start = len(SESSION_LOGS.getvalue())  # this test's line only, however often it runs
    structlog.get_logger("test").info("unicode.values", name="Zoë", note="\u2028")
    (text,) = [t for t in SESSION_LOGS.getvalue()[start:].splitlines() if "unicode.values" in t]
    # As compact as the fast encoder's lines: no space after a separator.
    assert text.isascii() and '"name":"Zo\\u00eb"' in text and "\\u2028" in text
    (line,) = [line for line in logs() if line["event"] == "unicode.values"]
    assert (line["name"], line["note"]) == ("Zoë", "\u2028")


@pytest.mark.parametrize(
    ("now", "shown"),
    [
        (1764567890.123456, "2025-12-01T05:44:50.123456Z"),
        (1764567891.000001, "2025-12-01T05:44:51.000001Z"),  # the next second
        (1764567890.5, "2025-12-01T05:44:50.500000Z"),  # an earlier one again
    ],
)
def test_timestamps_are_utc_iso_8601_to_the_microsecond(
    monkeypatch: pytest.MonkeyPatch,
    logs: Callable[[], list[dict[str, Any]]],
    now: float,
    shown: str,
) -> None:
    structlog.get_logger("test").info("clock.before")  # the second before, cached
    monkeypatch.setattr("bridge.log_setup.time.time", lambda: now)
    structlog.get_logger("test").info("clock.read")
    (line,) = [line for line in logs() if line["event"] == "clock.read"]
    assert line["timestamp"] == shown


@pytest.mark.parametrize(
    ("method", "level"),
    [
        ("debug", "debug"),
        ("info", "info"),
        ("warning", "warning"),
        ("warn", "warning"),
        ("error", "error"),
        ("critical", "critical"),
        ("fatal", "critical"),
    ],
)
def test_each_level_method_writes_one_line_at_its_level(
    method: str, level: str, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    getattr(structlog.get_logger("test"), method)("level.named", attempt=3)
    (line,) = [line for line in logs() if line["event"] == "level.named"]
    assert (line["level"], line["attempt"]) == (level, 3)


def test_lines_below_the_level_are_dropped_even_by_a_logger_bound_before_the_change(
    logs: Callable[[], list[dict[str, Any]]],
) -> None:
    bound = structlog.get_logger("test").bind(store="main")
    set_level("warning")  # as a reload does
    try:
        bound.debug("below.level")
        bound.info("below.level")
        bound.warning("at.level")
        bound.error("above.level")
    finally:
        set_level("debug")
    assert [line["event"] for line in logs()] == ["at.level", "above.level"]


def test_bound_fields_and_the_calls_own_are_both_written_the_calls_winning(
    logs: Callable[[], list[dict[str, Any]]],
) -> None:
    structlog.get_logger("test").bind(store="main", attempt=1).info("fields.merged", attempt=2)
    (line,) = [line for line in logs() if line["event"] == "fields.merged"]
    assert (line["store"], line["attempt"]) == ("main", 2)


def test_exception_logs_the_traceback_at_error_unless_told_not_to(
    logs: Callable[[], list[dict[str, Any]]],
) -> None:
    logger = structlog.get_logger("test")
    try:
        raise ValueError("the cause")
    except ValueError:
        logger.exception("failed.with_traceback", step=2)
        logger.exception("failed.without_traceback", exc_info=False)
    with_traceback, without = [line for line in logs() if line["event"].startswith("failed.")]
    assert with_traceback["level"] == "error" and with_traceback["step"] == 2
    assert "ValueError: the cause" in with_traceback["exception"]
    assert "exc_info" not in with_traceback
    assert without["level"] == "error" and "exception" not in without


def test_a_plain_stream_gets_each_line_at_once(tmp_path: Path) -> None:
    """Written to a file as it is logged (the daemon's own stream batches per loop turn)."""
    path = tmp_path / "bridge.log"
    with path.open("w") as stream:
        configure_logging(LoggingConfig(format="json", level="info"), stream=stream)
        try:
            structlog.get_logger("test").info("flushed.now")
            assert json.loads(path.read_text())["event"] == "flushed.now"
        finally:
            configure_logging(LoggingConfig(format="json", level="debug"), stream=SESSION_LOGS)
