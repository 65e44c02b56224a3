"""OAuth 1.0a signing against an independent implementation (oauthlib) and RFC 5849's example."""

from __future__ import annotations

import re
import time
from urllib.parse import quote, urlencode

import pytest
from oauthlib import oauth1 as oauthlib_oauth1
from oauthlib.common import Request

from bridge.oauth1 import oauth_query, signature, signature_base_string

rfc5849 = oauthlib_oauth1.rfc5849.signature

ORDER_URL = "http://127.0.0.1:8080/wp-json/wc/v3/orders/11"
SECRET = "cs_0123456789abcdef0123456789abcdef01234567"


def oauthlib_signature(
    method: str, url: str, secret: str, params: dict[str, str], algorithm: str
) -> str:
    """What oauthlib computes for the same request parameters (all but the signature)."""
    signed = [(key, value) for key, value in params.items() if key != "oauth_signature"]
    base = rfc5849.signature_base_string(method, url, rfc5849.normalize_parameters(signed))
    client = oauthlib_oauth1.Client("unused", client_secret=secret)
    sign = {
        "HMAC-SHA1": rfc5849.sign_hmac_sha1_with_client,
        "HMAC-SHA256": rfc5849.sign_hmac_sha256_with_client,
    }[algorithm]
    return sign(base, client)


def oauthlib_accepts(method: str, url: str, query: dict[str, str], secret: str) -> bool:
    """Whether oauthlib, as the receiving server, verifies the request sent with `query`.

    Everything is read back from the URL as it goes on the wire, so whatever
    the query holds (the oauth_* parameters included) is what is checked.
    """
    sent = f"{url}?{urlencode(query, quote_via=quote)}"
    request = Request(sent, http_method=method)
    request.params = rfc5849.collect_parameters(
        uri_query=sent.partition("?")[2], exclude_oauth_signature=True
    )
    request.signature = query["oauth_signature"]
    accepted: bool = rfc5849.verify_hmac_sha256(request, client_secret=secret)
    return accepted


# RFC 5849, section 3.4.1.1: the example request's parameters and its base string.
RFC_PARAMETERS = [
    ("b5", "=%3D"),
    ("a3", "a"),
    ("c@", ""),
    ("a2", "r b"),
    ("oauth_consumer_key", "9djdj82h48djs9d2"),
    ("oauth_token", "kkk9d7dh3k39sjv7"),
    ("oauth_signature_method", "HMAC-SHA1"),
    ("oauth_timestamp", "137131201"),
    ("oauth_nonce", "7d8f3e4a"),
    ("c2", ""),
    ("a3", "2 q"),
]
RFC_BASE_STRING = (
    "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q"
    "%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_"
    "key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m"
    "ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk"
    "9d7dh3k39sjv7"
)


@pytest.mark.parametrize("method", ["POST", "post"])
def test_the_base_string_of_rfc_5849s_example(method: str) -> None:
    # Encoded names and values sorted, a repeated name sorted by value, the method upper case.
    assert signature_base_string(method, "http://example.com/request", RFC_PARAMETERS) == (
        RFC_BASE_STRING
    )


@pytest.mark.parametrize(
    "value",
    ["a b&c=d~é", "a/b+c", "!*'()", "-._~", "%2E%", "\u2028\U0001f600", "[x]:@;,?#$"],
)
def test_parameters_are_percent_encoded_as_oauthlib_does(value: str) -> None:
    parameters = [("q", value), (value, "v"), ("oauth_nonce", "n")]
    url = "http://shop.test/blog/wp-json/wc/v3/orders"
    expected = rfc5849.signature_base_string("GET", url, rfc5849.normalize_parameters(parameters))
    assert signature_base_string("GET", url, parameters) == expected


@pytest.mark.parametrize(
    ("method", "url", "query"),
    [
        ("GET", ORDER_URL, {}),
        ("PUT", ORDER_URL, {}),
        (
            "GET",
            "http://shop.test/blog/wp-json/wc/v3/orders",
            {"per_page": "2", "search": "a b&c=d~é"},
        ),
    ],
)
@pytest.mark.parametrize("secret", ["cs_plain", SECRET])
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
    assert params["oauth_signature"] == oauthlib_signature(
        method, url, secret, params, "HMAC-SHA256"
    )
    assert oauthlib_accepts(method, url, params, secret)
    assert not oauthlib_accepts(method, url, params, secret + "0")


def test_what_is_given_is_what_is_signed_and_sent() -> None:
    params = oauth_query(
        "GET",
        ORDER_URL,
        consumer_key="ck_x",
        consumer_secret=SECRET,
        query={"per_page": "2"},
        nonce="n0nce",
        timestamp=1795000000,
    )
    signed = {key: value for key, value in params.items() if key != "oauth_signature"}
    assert signed == {
        "per_page": "2",
        "oauth_consumer_key": "ck_x",
        "oauth_nonce": "n0nce",
        "oauth_signature_method": "HMAC-SHA256",
        "oauth_timestamp": "1795000000",
    }
    assert oauthlib_accepts("GET", ORDER_URL, params, SECRET)


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
    assert ours != signature(signature_base_string("GET", url, params.items()), "cs")


def test_each_request_gets_a_fresh_random_nonce() -> None:
    nonces = set()
    for _ in range(20):
        params = oauth_query("GET", ORDER_URL, consumer_key="ck", consumer_secret=SECRET)
        # 128 random bits, written as hex.
        assert re.fullmatch(r"[0-9a-f]{32}", params["oauth_nonce"])
        assert oauthlib_accepts("GET", ORDER_URL, params, SECRET)
        nonces.add(params["oauth_nonce"])
    assert len(nonces) == 20


def test_the_timestamp_is_now_unless_given() -> None:
    before = int(time.time())
    params = oauth_query("GET", ORDER_URL, consumer_key="ck", consumer_secret=SECRET)
    after = int(time.time())
    assert before <= int(params["oauth_timestamp"]) <= after
    assert params["oauth_timestamp"].isdigit()
    assert oauthlib_accepts("GET", ORDER_URL, params, SECRET)
    pinned = oauth_query("GET", ORDER_URL, consumer_key="ck", consumer_secret=SECRET, timestamp=7)
    assert pinned["oauth_timestamp"] == "7"


def test_the_host_is_part_of_the_signature() -> None:
    common = dict(consumer_key="ck", consumer_secret=SECRET, nonce="n", timestamp=1)
    home = oauth_query("GET", ORDER_URL, **common)
    other_url = "http://localhost:8080/wp-json/wc/v3/orders/11"
    assert home["oauth_signature"] != oauth_query("GET", other_url, **common)["oauth_signature"]
    # Sent to the other host, the home URL's signature does not verify.
    assert oauthlib_accepts("GET", ORDER_URL, home, SECRET)
    assert not oauthlib_accepts("GET", other_url, home, SECRET)


def test_query_parameters_are_signed_and_returned() -> None:
    url = "http://127.0.0.1:8080/wp-json/wc/v3/orders"
    params = oauth_query(
        "GET", url, consumer_key="ck", consumer_secret=SECRET, query={"per_page": "2"}
    )
    assert params["per_page"] == "2"
    assert oauthlib_accepts("GET", url, params, SECRET)
    # A query changed on the way, or a parameter added, no longer verifies.
    assert not oauthlib_accepts("GET", url, params | {"per_page": "100"}, SECRET)
    assert not oauthlib_accepts("GET", url, params | {"status": "any"}, SECRET)
