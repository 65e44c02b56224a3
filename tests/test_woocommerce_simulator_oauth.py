"""The simulated WooCommerce's OAuth 1.0a checks, against signatures the bridge did not make.

Requests here are signed by oauthlib's client (what requests-oauthlib uses,
as in fixtures 25 and 26), or by hand from a written-out base string (known
answers), never by `bridge.oauth1`: the simulator must accept what a
WooCommerce shop accepts, whoever signed it, and refuse what the shop
refuses, including where WooCommerce departs from RFC 5849.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
import pytest
from oauthlib import oauth1

from bridge_simulators import WooCommerceSimulator
from bridge_simulators.woocommerce_auth import ApiKey, AuthRequest, NonceStore, authenticate
from bridge_simulators.woocommerce_errors import RestError

KEY, SECRET = "ck_REDACTED", "cs_REDACTED"
ORDER_PATH = "/wp-json/wc/v3/orders/11"
NOW = 1_800_000_000
MISMATCH = "Invalid signature - provided signature does not match."
METHODS = [oauth1.SIGNATURE_HMAC_SHA1, oauth1.SIGNATURE_HMAC_SHA256]
PLACES = [oauth1.SIGNATURE_TYPE_QUERY, oauth1.SIGNATURE_TYPE_AUTH_HEADER]


def client(
    method: str = oauth1.SIGNATURE_HMAC_SHA256,
    place: str = oauth1.SIGNATURE_TYPE_AUTH_HEADER,
    *,
    secret: str = SECRET,
    **pinned: str,
) -> oauth1.Client:
    return oauth1.Client(
        KEY, client_secret=secret, signature_method=method, signature_type=place, **pinned
    )


@pytest.fixture
async def shop() -> AsyncIterator[WooCommerceSimulator]:
    async with WooCommerceSimulator() as simulator:
        simulator.seed_fixture_shop()
        simulator.add_key(KEY, SECRET)
        yield simulator


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


async def send(
    session: aiohttp.ClientSession,
    method: str,
    signed: tuple[str, dict[str, str], Any],
) -> tuple[int, Any]:
    """Send what `oauthlib.oauth1.Client.sign` returned, URL as it is."""
    url, headers, body = signed
    async with session.request(
        method, aiohttp.client.URL(url, encoded=True), headers=headers, data=body
    ) as response:
        return response.status, await response.json()


def home(shop: WooCommerceSimulator) -> str:
    assert shop.base_url is not None
    return shop.base_url


# Over HTTP, as the fixtures were recorded ----------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("place", PLACES)
async def test_hmac_sha1_and_sha256_in_the_query_or_the_header_are_accepted(
    shop: WooCommerceSimulator, session: aiohttp.ClientSession, method: str, place: str
) -> None:
    signed = client(method, place).sign(home(shop) + ORDER_PATH, "GET")
    status, order = await send(session, "GET", signed)
    assert (status, order["id"]) == (200, 11)


@pytest.mark.parametrize("place", PLACES)
async def test_query_parameters_are_signed(
    shop: WooCommerceSimulator, session: aiohttp.ClientSession, place: str
) -> None:
    url = home(shop) + "/wp-json/wc/v3/orders?per_page=2"
    signed = client(place=place).sign(url, "GET")
    status, orders = await send(session, "GET", signed)
    assert (status, len(orders)) == (200, 2)
    tampered = (signed[0].replace("per_page=2", "per_page=3"), signed[1], signed[2])
    status, error = await send(session, "GET", tampered)
    assert (status, error["message"]) == (401, MISMATCH)


async def test_a_form_body_is_signed(
    shop: WooCommerceSimulator, session: aiohttp.ClientSession
) -> None:
    url = home(shop) + ORDER_PATH + "/notes"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    signer = client(place=oauth1.SIGNATURE_TYPE_BODY)
    status, note = await send(session, "POST", signer.sign(url, "POST", "note=Paid+twice", form))
    assert (status, note["note"]) == (201, "Paid twice")
    signed = signer.sign(url, "POST", "note=Paid+once", form)
    tampered = (signed[0], signed[1], signed[2].replace("Paid+once", "Paid+thrice"))
    status, error = await send(session, "POST", tampered)
    assert (status, error["message"]) == (401, MISMATCH)
    assert [note.note for note in shop.notes(11)] == ["Paid twice"]


async def test_a_json_body_is_never_signed(
    shop: WooCommerceSimulator, session: aiohttp.ClientSession
) -> None:
    url = home(shop) + ORDER_PATH
    headers = {"Content-Type": "application/json"}
    # As requests-oauthlib signs it (fixture 26): without the body.
    _, signed_headers, _ = client().sign(url, "PUT", None, headers)
    body = json.dumps({"status": "on-hold"})
    status, order = await send(session, "PUT", (url, signed_headers, body))
    assert (status, order["status"]) == (200, "on-hold")
    # oauthlib's own client adds an `oauth_body_hash`: signed like any header
    # parameter, never compared with the body, which WooCommerce does not read.
    signed = client().sign(url, "PUT", json.dumps({"status": "pending"}), headers)
    assert "oauth_body_hash" in signed[1]["Authorization"]
    status, order = await send(session, "PUT", (url, signed[1], json.dumps({"status": "failed"})))
    assert (status, order["status"]) == (200, "failed")


@pytest.mark.parametrize("place", PLACES)
async def test_a_wrong_secret_or_another_host_does_not_match(
    shop: WooCommerceSimulator, session: aiohttp.ClientSession, place: str
) -> None:
    url = home(shop) + ORDER_PATH
    wrong_secret = client(place=place, secret="cs_wrong").sign(url, "GET")
    status, error = await send(session, "GET", wrong_secret)
    assert (status, error["message"]) == (401, MISMATCH)
    # Signed for localhost while the home URL says 127.0.0.1 (fixture 27), sent to 127.0.0.1.
    other_host = client(place=place).sign(url.replace("127.0.0.1", "localhost"), "GET")
    sent = (other_host[0].replace("localhost", "127.0.0.1"), other_host[1], other_host[2])
    status, error = await send(session, "GET", sent)
    assert (status, error["message"]) == (401, MISMATCH)


async def test_a_nonce_is_refused_the_second_time(
    shop: WooCommerceSimulator, session: aiohttp.ClientSession
) -> None:
    signed = client(nonce="used-once").sign(home(shop) + ORDER_PATH, "GET")
    assert (await send(session, "GET", signed))[0] == 200
    status, error = await send(session, "GET", signed)
    assert (status, error["message"]) == (401, "Invalid nonce - nonce has already been used.")


# Where WooCommerce departs from RFC 5849, as known answers ------------------------------


def known_answer(base_string: str, secret: str = SECRET) -> str:
    """HMAC-SHA256 keyed with `secret&`, as WooCommerce computes it."""
    digest = hmac.new(f"{secret}&".encode(), base_string.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def check(params: dict[str, str], *, home_url: str, path: str = ORDER_PATH) -> ApiKey | None:
    request = AuthRequest("GET", f"{path}?{urlencode(params)}", params)
    keys = {KEY: ApiKey(KEY, SECRET)}
    return authenticate(request, keys=keys, nonces=NonceStore(), home_url=home_url, now=NOW)


def oauth_params(nonce: str, **extra: str) -> dict[str, str]:
    return {
        **extra,
        "oauth_consumer_key": KEY,
        "oauth_nonce": nonce,
        "oauth_signature_method": "HMAC-SHA256",
        "oauth_timestamp": str(NOW),
    }


def signed_by_oauthlib(url: str, nonce: str) -> dict[str, str]:
    pinned = client(place=oauth1.SIGNATURE_TYPE_QUERY, nonce=nonce, timestamp=str(NOW))
    signed_url, _, _ = pinned.sign(url, "GET")
    return dict(parse_qsl(urlsplit(signed_url).query))


def test_the_home_url_is_signed_exactly_as_wordpress_stores_it() -> None:
    home_url = "http://Shop.Example:80"
    params = oauth_params("kat-home")
    params["oauth_signature"] = known_answer(
        "GET&http%3A%2F%2FShop.Example%3A80%2Fwp-json%2Fwc%2Fv3%2Forders%2F11&"
        "oauth_consumer_key%3Dck_REDACTED%26oauth_nonce%3Dkat-home%26"
        "oauth_signature_method%3DHMAC-SHA256%26oauth_timestamp%3D1800000000"
    )
    assert check(params, home_url=home_url) == ApiKey(KEY, SECRET)
    # RFC 5849 lower-cases the host and drops the default port: not what WooCommerce signs.
    normalised = signed_by_oauthlib(home_url + ORDER_PATH, "kat-home-rfc")
    with pytest.raises(RestError, match=MISMATCH):
        check(normalised, home_url=home_url)


def test_parameters_are_sorted_by_their_names_before_encoding() -> None:
    home_url = "http://127.0.0.1:8080"
    params = oauth_params("kat-order", **{"a-": "1", "a/": "2"})
    # `a-` before `a/` as PHP's strcmp sorts them; RFC 5849 sorts `a%2F` first.
    params["oauth_signature"] = known_answer(
        "GET&http%3A%2F%2F127.0.0.1%3A8080%2Fwp-json%2Fwc%2Fv3%2Forders%2F11&"
        "a-%3D1%26a%252F%3D2%26oauth_consumer_key%3Dck_REDACTED%26oauth_nonce%3Dkat-order%26"
        "oauth_signature_method%3DHMAC-SHA256%26oauth_timestamp%3D1800000000"
    )
    assert check(params, home_url=home_url) == ApiKey(KEY, SECRET)
    rfc_ordered = signed_by_oauthlib(f"{home_url}{ORDER_PATH}?a-=1&a%2F=2", "kat-order-rfc")
    with pytest.raises(RestError, match=MISMATCH):
        check(rfc_ordered, home_url=home_url)


def test_names_that_sort_alike_either_way_verify_as_oauthlib_signs_them() -> None:
    home_url = "http://127.0.0.1:8080"
    url = f"{home_url}/wp-json/wc/v3/orders?per_page=2&page=1&status=processing"
    params = signed_by_oauthlib(url, "kat-plain")
    assert check(params, home_url=home_url, path="/wp-json/wc/v3/orders") == ApiKey(KEY, SECRET)


@pytest.mark.parametrize("secret", ["cs_a&b", "cs_a b", "cs_é", "cs_a%2F"])
def test_a_secret_woocommerce_would_never_issue_is_refused(secret: str) -> None:
    # WooCommerce keys the HMAC with the secret as it is, RFC 5849 with it
    # percent-encoded; they agree only for secrets like WooCommerce's own.
    with pytest.raises(ValueError, match="consumer secret"):
        WooCommerceSimulator().add_key(KEY, secret)
