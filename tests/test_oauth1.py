"""OAuth 1.0a signing against an independent implementation (oauthlib)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from oauthlib import oauth1 as oauthlib_oauth1

from bridge.oauth1 import oauth_query, signature, signature_base_string


def oauthlib_signature(
    method: str, url: str, secret: str, params: dict[str, str], algorithm: str
) -> str:
    """What oauthlib computes for the same request parameters (all but the signature)."""
    rfc5849 = oauthlib_oauth1.rfc5849.signature
    signed = [(key, value) for key, value in params.items() if key != "oauth_signature"]
    base = rfc5849.signature_base_string(method, url, rfc5849.normalize_parameters(signed))
    client = oauthlib_oauth1.Client("unused", client_secret=secret)
    sign = {
        "HMAC-SHA1": rfc5849.sign_hmac_sha1_with_client,
        "HMAC-SHA256": rfc5849.sign_hmac_sha256_with_client,
    }[algorithm]
    return sign(base, client)


@pytest.mark.parametrize(
    ("method", "url", "query"),
    [
        ("GET", "http://127.0.0.1:8080/wp-json/wc/v3/orders/11", {}),
        ("PUT", "http://127.0.0.1:8080/wp-json/wc/v3/orders/11", {}),
        (
            "GET",
            "http://shop.test/blog/wp-json/wc/v3/orders",
            {"per_page": "2", "search": "a b&c=d~é"},
        ),
    ],
)
@pytest.mark.parametrize("secret", ["cs_plain", "cs_0123456789abcdef0123456789abcdef01234567"])
def test_signature_matches_oauthlib(
    method: str, url: str, query: dict[str, str], secret: str
) -> None:
    params = oauth_query(
        method,
        url,
        consumer_key="ck_x",
        consumer_secret=secret,
        query=query,
        nonce="n0nce",
        timestamp=1795000000,
    )
    assert params["oauth_signature_method"] == "HMAC-SHA256"
    assert params["oauth_signature"] == oauthlib_signature(
        method, url, secret, params, "HMAC-SHA256"
    )


def test_hmac_sha1_matches_oauthlib() -> None:
    url = "http://127.0.0.1:8080/wp-json/wc/v3/orders/12"
    params = {
        "oauth_consumer_key": "ck",
        "oauth_nonce": "abc",
        "oauth_signature_method": "HMAC-SHA1",
        "oauth_timestamp": "1",
    }
    ours = signature(signature_base_string("GET", url, params.items()), "cs", "HMAC-SHA1")
    assert ours == oauthlib_signature("GET", url, "cs", params, "HMAC-SHA1")


def test_each_request_gets_a_fresh_nonce() -> None:
    url = "http://127.0.0.1:8080/wp-json/wc/v3/orders/1"
    first = oauth_query("GET", url, consumer_key="ck", consumer_secret="cs")
    second = oauth_query("GET", url, consumer_key="ck", consumer_secret="cs")
    assert first["oauth_nonce"] != second["oauth_nonce"]
    assert first["oauth_signature"] != second["oauth_signature"]


def test_the_host_is_part_of_the_signature() -> None:
    common = dict(consumer_key="ck", consumer_secret="cs", nonce="n", timestamp=1)
    home = oauth_query("GET", "http://127.0.0.1:8080/wp-json/wc/v3/orders/1", **common)
    other = oauth_query("GET", "http://localhost:8080/wp-json/wc/v3/orders/1", **common)
    assert home["oauth_signature"] != other["oauth_signature"]


def test_query_parameters_are_signed_and_returned() -> None:
    url = "http://127.0.0.1:8080/wp-json/wc/v3/orders"
    params = oauth_query(
        "GET", url, consumer_key="ck", consumer_secret="cs", query={"per_page": "2"}
    )
    assert params["per_page"] == "2"
    assert sorted(params) == sorted(
        [
            "per_page",
            "oauth_consumer_key",
            "oauth_nonce",
            "oauth_signature",
            "oauth_signature_method",
            "oauth_timestamp",
        ]
    )
    assert urlsplit(url).query == ""
    assert dict(parse_qsl("per_page=2")) == {"per_page": "2"}
