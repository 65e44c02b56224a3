"""WordPress REST errors as the simulated WooCommerce answers them.

Every error body is `{"code", "message", "data": {"status", ...}}`, exactly as
WordPress serialises a `WP_Error`; codes and messages are copied from the
recordings in `tests/fixtures/woocommerce/` or from the WordPress/WooCommerce
source where no recording exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "RestError",
    "invalid_json",
    "invalid_params",
    "missing_params",
    "no_route",
    "param_error",
    "wordpress_list",
]


class RestError(Exception):
    """A request that ends with a WordPress JSON error answer."""

    def __init__(self, status: int, code: str, message: str, **data: Any) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.data = data

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "data": {"status": self.status, **self.data},
        }


def wordpress_list(items: Sequence[str]) -> str:
    """`a, b, and c` / `a and b`, as WordPress's `wp_sprintf_l` joins enum values in messages."""
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


def param_error(code: str, message: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """One entry of `data.details` of a `rest_invalid_param` answer."""
    return {"code": code, "message": message, "data": data}


def invalid_params(details: dict[str, dict[str, Any]]) -> RestError:
    """WordPress's answer when argument validation fails (fixtures 13 and 23)."""
    return RestError(
        400,
        "rest_invalid_param",
        f"Invalid parameter(s): {', '.join(details)}",
        params={name: detail["message"] for name, detail in details.items()},
        details=details,
    )


def missing_params(names: Sequence[str]) -> RestError:
    return RestError(
        400,
        "rest_missing_callback_param",
        f"Missing parameter(s): {', '.join(names)}",
        params=list(names),
    )


def invalid_json(reason: str) -> RestError:
    # 4 is PHP's JSON_ERROR_SYNTAX, the code WordPress reports for any unparsable body.
    return RestError(
        400,
        "rest_invalid_json",
        "Invalid JSON body passed.",
        json_error_code=4,
        json_error_message=reason,
    )


def no_route() -> RestError:
    return RestError(
        404, "rest_no_route", "No route was found matching the URL and request method."
    )
