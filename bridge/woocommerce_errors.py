"""How the bridge reads a WooCommerce failure: retry, give up, or fix the config.

Pure: `classify` maps an HTTP status and WooCommerce's error `code` and
`message` to an `UpstreamFailure`. WooCommerce reports a missing order as 404 on
GET but 400 on PUT, so the `code` decides before the status does.
"""

from __future__ import annotations

from .upstream import FailureKind, UpstreamFailure

__all__ = ["classify"]

_ORDER_NOT_FOUND_CODES = frozenset(
    {"woocommerce_rest_shop_order_invalid_id", "woocommerce_rest_order_invalid_id"}
)
_ANONYMOUS_CODES = frozenset(
    {
        "woocommerce_rest_cannot_view",
        "woocommerce_rest_cannot_edit",
        "woocommerce_rest_cannot_create",
    }
)


def _auth_reason(code: str, message: str, *, auth_method: str) -> str:
    if "does not have write permissions" in message:
        return "the WooCommerce API key is read-only: create a key with Read/Write permission"
    if "signature does not match" in message:
        return (
            "WooCommerce refused the OAuth signature: set woocommerce.url to WordPress's home "
            "URL exactly (Settings > General: scheme, host and port), and check the consumer "
            'secret; behind a TLS-terminating proxy use auth = "oauth1" with the http:// URL'
        )
    if "Consumer key is invalid" in message:
        return "WooCommerce does not know this consumer key: check woocommerce.consumer_key"
    if "Invalid timestamp" in message:
        return "WooCommerce refused the request time: this machine's clock is off by over 15 min"
    if code in _ANONYMOUS_CODES:
        if auth_method == "basic":
            return (
                "WooCommerce ignored HTTP Basic auth, as it does when it believes the site is "
                'plain HTTP: use an https:// woocommerce.url, or auth = "oauth1" behind a '
                "TLS-terminating proxy"
            )
        return (
            "WooCommerce treated the request as anonymous: check the API keys and woocommerce.url"
        )
    return f"WooCommerce refused the credentials ({code or 'no code'})"


def classify(
    status: int,
    code: str | None,
    message: str | None,
    *,
    auth_method: str,
    retry_after: float | None = None,
) -> UpstreamFailure:
    """The failure a non-2xx answer means. `auth_method` is "basic" or "oauth1"."""
    code = code or ""
    message = message or ""
    if code in _ORDER_NOT_FOUND_CODES:
        return UpstreamFailure(
            FailureKind.ORDER_NOT_FOUND, "order not found in WooCommerce", status
        )
    if "nonce has already been used" in message:
        # aiohttp resends a GET or PUT, URL and nonce unchanged, when the
        # connection drops; the refusal means the first copy reached the shop.
        # Not a credentials problem: the next attempt re-reads the order.
        return UpstreamFailure(
            FailureKind.TRANSIENT, "a resent request reached WooCommerce twice", status
        )
    if status in (401, 403):
        return UpstreamFailure(
            FailureKind.CONFIG, _auth_reason(code, message, auth_method=auth_method), status
        )
    if status in (408, 425, 429) or status >= 500:
        return UpstreamFailure(
            FailureKind.TRANSIENT, f"WooCommerce answered {status}", status, retry_after
        )
    if status == 404:
        return UpstreamFailure(
            FailureKind.REJECTED,
            "WooCommerce REST API not found: is woocommerce.url the WordPress home URL, "
            "with pretty permalinks?",
            status,
        )
    return UpstreamFailure(
        FailureKind.REJECTED, f"WooCommerce rejected the request: {code or status}", status
    )
