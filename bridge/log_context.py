"""The ids every log line of a request or a delivery carries, bound once and merged into each line.

structlog's own `contextvars` module keeps a context variable per key and,
for every line, looks through a copy of the whole context for them. The
ids here live in one context variable holding a dict that is never changed
in place, only replaced: binding costs a dict copy, merging a read. Like
any context variable, what a request's task binds is seen by that task
only, never by the next request or the one beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

__all__ = ["bind", "bound", "clear", "merge_bound"]

_NOTHING: Mapping[str, Any] = MappingProxyType({})
_fields: ContextVar[Mapping[str, Any]] = ContextVar("bridge_log_fields", default=_NOTHING)


def bind(**fields: Any) -> None:
    """Add `fields` to every later line of the current context (a task, or the thread)."""
    _fields.set({**_fields.get(), **fields})


def clear() -> None:
    """Drop every field bound in the current context."""
    _fields.set(_NOTHING)


def bound() -> Mapping[str, Any]:
    """The fields bound in the current context."""
    return _fields.get()


def merge_bound(logger: Any, method_name: str, event_dict: Any) -> Any:
    """structlog processor: the bound fields, where the line does not set them itself."""
    for key, value in _fields.get().items():
        event_dict.setdefault(key, value)
    return event_dict
