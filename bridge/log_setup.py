"""structlog set-up: JSON lines for journald and files, colours for a terminal.

Library logs (aiohttp, asyncio) go through the same renderer, so every line
of output is one JSON object when the format is json. The console format
escapes control characters in every value, as JSON does, so a value taken
from a request cannot start a line of its own or send terminal escapes.
"""

from __future__ import annotations

import atexit
import json
import logging
import sys
import time
from typing import Any, TextIO

import orjson
import structlog
from aiohttp.http_exceptions import HttpProcessingError

from .config import LoggingConfig
from .log_context import merge_bound
from .log_output import LoopBatchedStream
from .text import escape_controls

__all__ = ["EscapedConsoleRenderer", "configure_logging", "set_level"]

# The level in force; a processor reads it on every call, so a reload can
# change it even for loggers that were bound (and cached) before.
_threshold = logging.INFO


def set_level(level: str) -> None:
    global _threshold
    _threshold = logging.getLevelNamesMapping()[level.upper()]


class _ScrubServerErrors(logging.Filter):
    """Keep what went wrong in aiohttp's server, not the bytes it went wrong on.

    aiohttp logs a request it cannot parse with the offending bytes in the
    exception's message, and those may be a customer's name or e-mail from a
    callback body. A request's fault is a warning; anything else stays an error.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is None:
            return True
        record.msg = "http.server_error"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        record.error = type(error).__name__
        if isinstance(error, HttpProcessingError):  # the request's fault
            record.msg = "http.malformed_request"
            record.status = error.code
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


# Several lines by nature; their newlines stay, everything else is escaped.
_MULTILINE_KEYS = frozenset({"exception", "stack"})
# structlog shows a text value with these characters as a Python repr, quoted,
# so that `key=value` pairs stay apart; this renderer keeps that look.
_QUOTED = frozenset(" \t=\r\n\"'")


class _Shown:
    """A value rendered already: structlog shows its repr, and this is it."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _console_value(key: str, value: Any) -> Any:
    if key in _MULTILINE_KEYS and isinstance(value, str):
        return escape_controls(value, multiline=True)
    if key == "event":  # shown with str(), never quoted
        return escape_controls(str(value))
    if isinstance(value, str) and not _QUOTED & set(value):
        return escape_controls(value)  # stays a str: the level's colour is looked up by it
    # repr escapes control characters the same way; escaping again is a safety net.
    return _Shown(escape_controls(repr(value)))


class EscapedConsoleRenderer:
    """structlog's `ConsoleRenderer`, with control characters in keys and values escaped."""

    def __init__(self, **options: Any) -> None:
        self._render = structlog.dev.ConsoleRenderer(**options)

    def __call__(self, logger: Any, method_name: str, event_dict: Any) -> str:
        escaped = {
            # exc_info is turned into "exception" before this; left as it is.
            escape_controls(key): value if key == "exc_info" else _console_value(key, value)
            for key, value in event_dict.items()
        }
        return self._render(logger, method_name, escaped)


def _as_text(value: Any) -> str:
    """A value JSON has no form for (a path, an exception) as its repr."""
    return repr(value)


def _json_line(event_dict: Any) -> str:
    """An event as one line of JSON, with nothing but ASCII in it.

    orjson writes a line in a tenth of the stdlib's time, and a callback logs
    one line, so it is the fast path. It writes other characters as they
    are, though, and a value from a request may hold a C1 control or a line
    separator (U+0085, U+2028) that a terminal or a log shipper would act
    on: such a line, and anything orjson cannot write (an int over 64 bits),
    goes to the stdlib's encoder, which escapes every non-ASCII character.
    """
    try:
        line = orjson.dumps(event_dict, default=_as_text).decode()
    except TypeError:
        line = ""
    if line and line.isascii():  # isascii() is O(1) on a str
        return line
    return json.dumps(event_dict, separators=(",", ":"), default=_as_text)


def _render_json(logger: Any, method_name: str, event_dict: Any) -> str:
    """structlog processor: the event as one line of JSON (`_json_line`)."""
    return _json_line(event_dict)


def _renderer(use_json: bool) -> Any:
    return _render_json if use_json else EscapedConsoleRenderer()


class _BoundLogger(structlog.BoundLoggerBase):
    """The bound logger: each level's method runs the processors and writes the line itself.

    structlog's own filtering logger gets there through several calls that
    pass the fields on again each time; a callback logs a line, and those
    calls were half of its cost (docs/benchmarks.md). Lines below the
    configured level are dropped first, before any field is looked at.
    """

    def _line(self, method_name: str, level: int, event: str, fields: dict[str, Any]) -> None:
        if level < _threshold:
            return
        event_dict: Any = {**self._context, **fields} if self._context else fields
        event_dict["event"] = event
        logger = self._logger
        try:
            for processor in self._processors:
                event_dict = processor(logger, method_name, event_dict)
        except structlog.DropEvent:
            return
        logger.msg(event_dict)

    def debug(self, event: str, **fields: Any) -> None:
        self._line("debug", logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._line("info", logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._line("warning", logging.WARNING, event, fields)

    warn = warning

    def error(self, event: str, **fields: Any) -> None:
        self._line("error", logging.ERROR, event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        fields.setdefault("exc_info", True)
        self._line("error", logging.ERROR, event, fields)

    def critical(self, event: str, **fields: Any) -> None:
        self._line("critical", logging.CRITICAL, event, fields)

    fatal = critical


class _UtcTimeStamper:
    """`timestamp` as ISO 8601 in UTC to the microsecond, e.g. 2026-12-01T05:46:30.123456Z.

    structlog's `TimeStamper` builds a datetime per line; the date and time
    to the second change once a second, so they are formatted once a second.
    """

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, logger: Any, method_name: str, event_dict: Any) -> Any:
        # Rounded to the microsecond as datetime does: a float of today's time
        # cannot hold every microsecond exactly.
        second, microsecond = divmod(round(time.time() * 1_000_000), 1_000_000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        event_dict["timestamp"] = f"{self._prefix}.{microsecond:06d}Z"
        return event_dict


class _LineWriter:
    """structlog's output: each rendered event a line on the stream.

    structlog's `WriteLogger` takes a lock and flushes after every line; the
    streams here need neither (`LoopBatchedStream` has its own lock and
    decides when to write), except a plain stream, which is flushed so that
    a line is out at once.
    """

    def __init__(self, stream: Any) -> None:
        self._write = stream.write
        self._flush = None if isinstance(stream, LoopBatchedStream) else stream.flush

    def msg(self, message: str) -> None:
        self._write(message + "\n")
        if self._flush is not None:
            self._flush()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class _LineWriterFactory:
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __call__(self, *args: Any) -> _LineWriter:
        return _LineWriter(self._stream)


def configure_logging(
    settings: LoggingConfig, *, stream: TextIO | None = None, batch_per_loop_turn: bool = False
) -> None:
    """Send all logs to `stream` (stdout by default) in the configured format.

    `batch_per_loop_turn` is for the daemon: lines its event loop writes go
    out once per turn of the loop (`log_output.LoopBatchedStream`).
    """
    output: Any = stream or sys.stdout
    use_json = settings.format == "json" or (settings.format == "auto" and not output.isatty())
    if batch_per_loop_turn:
        output = LoopBatchedStream(output)
        # Lines held when the process ends still go out.
        atexit.register(output.write_held)
    set_level(settings.level)
    level = logging.getLevelNamesMapping()[settings.level.upper()]
    shared: list[Any] = [
        merge_bound,
        structlog.processors.add_log_level,
        _UtcTimeStamper(),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, _renderer(use_json)],
        # It drops lines below `_threshold`, so the level can change live.
        wrapper_class=_BoundLogger,
        logger_factory=_LineWriterFactory(output),
        # Loggers are bound on first use, so configure before logging.
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(output)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _renderer(use_json),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _ScrubServerErrors) for f in server_log.filters):
        server_log.addFilter(_ScrubServerErrors())
    # Library chatter below warning is not for admins.
    root.setLevel(max(level, logging.WARNING))
