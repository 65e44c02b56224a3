"""OAuth 1.0a one-legged signatures, as WooCommerce checks them over plain HTTP.

Pure functions: the client signs with them and the simulated WooCommerce
verifies with them. WooCommerce signs the *home URL* of the site plus the
request path (not the Host the client connected to), every query and form
parameter except `oauth_signature`, and never a JSON body. The key is the
consumer secret followed by `&` (there is no token secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from urllib.parse import quote

__all__ = [
    "SIGNATURE_METHODS",
    "oauth_query",
    "signature",
    "signature_base_string",
]

SIGNATURE_METHODS = {"HMAC-SHA1": hashlib.sha1, "HMAC-SHA256": hashlib.sha256}


def _encode(value: str) -> str:
    """RFC 3986 percent-encoding, as OAuth requires (only unreserved characters stay)."""
    return quote(value, safe="~")


def signature_base_string(method: str, url: str, parameters: Iterable[tuple[str, str]]) -> str:
    """`METHOD&encoded-url&encoded-sorted-parameters`, `url` without its query string."""
    normalized = sorted((_encode(key), _encode(value)) for key, value in parameters)
    parameter_string = "&".join(f"{key}={value}" for key, value in normalized)
    return "&".join((method.upper(), _encode(url), _encode(parameter_string)))


def signature(base_string: str, consumer_secret: str, method: str = "HMAC-SHA256") -> str:
    """Base64 HMAC of the base string keyed with `consumer_secret&`.

    WooCommerce does not percent-encode the secret as RFC 5849 says; its
    secrets are `cs_` and hex digits, for which the two agree.
    """
    digest = SIGNATURE_METHODS[method]
    key = f"{consumer_secret}&".encode()
    return base64.b64encode(hmac.new(key, base_string.encode(), digest).digest()).decode()


def oauth_query(
    method: str,
    url: str,
    *,
    consumer_key: str,
    consumer_secret: str,
    query: dict[str, str] | None = None,
    nonce: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    """The full query string for a signed request: `query` plus the oauth_* parameters.

    `url` must be the shop's home URL joined with the request path. A fresh
    nonce and the current time are used unless given (tests pin them).
    """
    parameters = dict(query or {})
    parameters.update(
        oauth_consumer_key=consumer_key,
        oauth_nonce=nonce or secrets.token_hex(16),
        oauth_signature_method="HMAC-SHA256",
        oauth_timestamp=str(int(time.time()) if timestamp is None else timestamp),
    )
    base = signature_base_string(method, url, parameters.items())
    parameters["oauth_signature"] = signature(base, consumer_secret)
    return parameters
