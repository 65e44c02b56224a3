"""Classifying WooCommerce failures by code first, status second."""

from __future__ import annotations

import pytest

from bridge.upstream import FailureKind
from bridge.woocommerce_errors import classify

NOT_FOUND = FailureKind.ORDER_NOT_FOUND


@pytest.mark.parametrize(
    ("status", "code", "message", "kind"),
    [
        (404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.", NOT_FOUND),
        (400, "woocommerce_rest_shop_order_invalid_id", "ID is invalid.", NOT_FOUND),  # PUT
        (404, "woocommerce_rest_order_invalid_id", "Invalid order ID.", NOT_FOUND),  # notes
        (400, "rest_invalid_param", "Invalid parameter(s): status", FailureKind.REJECTED),
        (404, "rest_no_route", "No route", FailureKind.REJECTED),
        (
            401,
            "woocommerce_rest_authentication_error",
            "Consumer key is invalid.",
            FailureKind.CONFIG,
        ),
        (403, "woocommerce_rest_cannot_edit", "no", FailureKind.CONFIG),
        (
            401,
            "woocommerce_rest_authentication_error",
            "Invalid nonce - nonce has already been used.",
            FailureKind.TRANSIENT,
        ),
        (408, None, None, FailureKind.TRANSIENT),
        (429, None, None, FailureKind.TRANSIENT),
        (500, "internal_server_error", "boom", FailureKind.TRANSIENT),
        (502, None, None, FailureKind.TRANSIENT),
        (503, None, None, FailureKind.TRANSIENT),
    ],
)
def test_classification(
    status: int, code: str | None, message: str | None, kind: FailureKind
) -> None:
    assert classify(status, code, message, auth_method="oauth1").kind is kind


@pytest.mark.parametrize(
    ("message", "code", "auth_method", "hint"),
    [
        (
            "Invalid signature - provided signature does not match.",
            "woocommerce_rest_authentication_error",
            "oauth1",
            "home URL",
        ),
        (
            "The API key provided does not have write permissions.",
            "woocommerce_rest_authentication_error",
            "oauth1",
            "read-only",
        ),
        (
            "Sorry, you cannot view this resource.",
            "woocommerce_rest_cannot_view",
            "basic",
            "Basic auth",
        ),
        ("Invalid timestamp.", "woocommerce_rest_authentication_error", "oauth1", "clock"),
    ],
)
def test_auth_failures_name_the_likely_cause(
    message: str, code: str, auth_method: str, hint: str
) -> None:
    failure = classify(401, code, message, auth_method=auth_method)
    assert failure.kind is FailureKind.CONFIG
    assert hint in failure.reason


def test_retry_after_is_kept() -> None:
    assert classify(429, None, None, auth_method="basic", retry_after=30).retry_after == 30
