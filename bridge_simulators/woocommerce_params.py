"""WordPress REST argument validation for the few arguments the simulator reads.

WordPress validates a route's arguments against their schema before the
permission callback runs, so an anonymous PUT with a bogus status gets 400
`rest_invalid_param`, not 401 (fixture 23). Messages and codes are WordPress's
(`rest_validate_value_from_schema`); values are sanitised the way it does
(`"true"` → True, `"2"` → 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bridge_simulators.woocommerce_errors import (
    invalid_params,
    missing_params,
    param_error,
    wordpress_list,
)

__all__ = ["Arg", "validate"]


@dataclass(frozen=True)
class Arg:
    """One argument of a route: its schema type and the checks WordPress runs on it."""

    type: Literal["string", "boolean", "integer", "meta_data"]
    enum: tuple[str, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    required: bool = False
    default: Any = None


def validate(args: Mapping[str, Arg], params: Mapping[str, Any]) -> dict[str, Any]:
    """The sanitised value of every declared argument (its default when absent)."""
    missing = [name for name, arg in args.items() if arg.required and name not in params]
    if missing:
        raise missing_params(missing)
    values: dict[str, Any] = {}
    details: dict[str, dict[str, Any]] = {}
    for name, arg in args.items():
        if name not in params:
            values[name] = arg.default
            continue
        value, error = _check(name, arg, params[name])
        if error is not None:
            details[name] = error
        values[name] = value
    if details:
        raise invalid_params(details)
    return values


def _type_error(name: str, type_name: str) -> dict[str, Any]:
    return param_error("rest_invalid_type", f"{name} is not of type {type_name}.", {"param": name})


def _check(name: str, arg: Arg, value: Any) -> tuple[Any, dict[str, Any] | None]:
    if arg.type == "string":
        if not isinstance(value, str):
            return value, _type_error(name, "string")
        if arg.enum is not None and value not in arg.enum:
            message = f"{name} is not one of {wordpress_list(arg.enum)}."
            return value, param_error("rest_not_in_enum", message)
        return value, None
    if arg.type == "boolean":
        return _boolean(name, value)
    if arg.type == "integer":
        return _integer(name, arg, value)
    return _meta_data(name, value)


def _boolean(name: str, value: Any) -> tuple[Any, dict[str, Any] | None]:
    """`rest_is_boolean` and `rest_sanitize_boolean`."""
    if isinstance(value, bool):
        return value, None
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1"), None
    if isinstance(value, int) and value in (0, 1):
        return bool(value), None
    return value, _type_error(name, "boolean")


def _integer(name: str, arg: Arg, value: Any) -> tuple[Any, dict[str, Any] | None]:
    """`rest_is_integer`: a whole number, or a string holding one."""
    number: float
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        number = float(value)
    except (TypeError, ValueError):
        return value, _type_error(name, "integer")
    if not number.is_integer():
        return value, _type_error(name, "integer")
    integer = int(number)
    low, high = arg.minimum, arg.maximum
    if low is not None and high is not None and not low <= integer <= high:
        message = f"{name} must be between {low} (inclusive) and {high} (inclusive)"
        return integer, param_error("rest_out_of_bounds", message)
    if low is not None and integer < low:
        message = f"{name} must be greater than or equal to {low}"
        return integer, param_error("rest_out_of_bounds", message)
    return integer, None


def _meta_data(name: str, value: Any) -> tuple[Any, dict[str, Any] | None]:
    """WooCommerce's `meta_data`: an array of objects with an integer `id` and a string `key`."""
    if not isinstance(value, list):
        return value, _type_error(name, "array")
    for index, entry in enumerate(value):
        where = f"{name}[{index}]"
        if not isinstance(entry, dict):
            return value, _type_error(where, "object")
        if "key" in entry and not isinstance(entry["key"], str):
            return value, _type_error(f"{where}[key]", "string")
        if "id" in entry and entry["id"] is not None:
            _, error = _integer(f"{where}[id]", Arg("integer"), entry["id"])
            if error is not None:
                return value, error
    return value, None
