"""WooCommerce's REST API key authentication (`WC_REST_Authentication`), without I/O.

Simulated, in WooCommerce's order of checks:
- only request URIs containing `wp-json/wc/` or `wp-json/wc-` authenticate at
  all, so `/?rest_route=/wc/v3/...` stays anonymous (fixture 30);
- over HTTPS, the key and secret from `?consumer_key=&consumer_secret=` or
  HTTP Basic; a wrong secret is "Consumer secret is invalid.", an unknown key
  falls through to OAuth. Over HTTP both are ignored (fixtures 19, 20);
- OAuth 1.0a one-legged, parameters from the query, a POST form and an
  `Authorization: OAuth` header: missing parameters, unknown key, signature
  method, signature over the site's *home URL* (fixture 27), timestamp within
  ±15 minutes, nonce unused by this key for 15 minutes;
- key permissions (read, write, read_write) by HTTP method, checked after
  authentication, before the route runs (fixture 24).

Signatures are computed with oauthlib's RFC 5849 primitives (percent-encoding,
the signature base string, HMAC-SHA1 and HMAC-SHA256), an implementation
independent of the bridge's own signing. WooCommerce assembles the pieces its
own way, so oauthlib's `collect_parameters`, `normalize_parameters` and
`base_string_uri` are not used: the parameters are PHP's (`$_GET`, `$_POST`,
then the header's `oauth_*`, one value per name, the last one winning), sorted
by their names before encoding (`uksort` with `strcmp`, where RFC 5849 sorts
the encoded names and values), and the URL is the home URL as WordPress stores
it (RFC 5849 would lower-case the host and drop a default port). The JSON body
is never signed, and an `oauth_body_hash` is signed like any other parameter
but never compared with the body.

Not simulated: PHP's array query parameters (`a[]=`) and its renaming of `.`
and spaces in parameter names, the key's last-access bookkeeping, and
WooCommerce's habit of remembering only the last nonce of each timestamp (the
simulator remembers every nonce, which is stricter).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote, unquote_plus, urlsplit

# oauthlib ships no type information: its functions are typed at the call sites below.
from oauthlib.oauth1.rfc5849 import (  # type: ignore[import-untyped]
    SIGNATURE_HMAC_SHA1,
    SIGNATURE_HMAC_SHA256,
    Client,
    signature,
    utils,
)

from bridge_simulators.woocommerce_errors import RestError

__all__ = [
    "NONCE_WINDOW",
    "ApiKey",
    "AuthRequest",
    "NonceStore",
    "Permissions",
    "authenticate",
    "check_key_permissions",
    "is_request_to_rest_api",
]

Permissions = Literal["read", "write", "read_write"]

# WooCommerce's window for timestamps and remembered nonces, in seconds.
NONCE_WINDOW = 15 * 60

# In the order WooCommerce checks them; its "Missing OAuth parameters" message keeps it.
_OAUTH_PARAMETERS = (
    "oauth_consumer_key",
    "oauth_timestamp",
    "oauth_nonce",
    "oauth_signature",
    "oauth_signature_method",
)
# The expression of the OAuth PHP library WooCommerce parses the header with.
_HEADER_PARAMETER = re.compile(r'(oauth_[a-z_-]*)=(:?"([^"]*)"|([^,]*))')
_AUTH_ERROR = "woocommerce_rest_authentication_error"
# The signature methods WooCommerce accepts (fixtures 25, 26), each with oauthlib's signer.
_SIGNERS = {
    SIGNATURE_HMAC_SHA1: signature.sign_hmac_sha1_with_client,
    SIGNATURE_HMAC_SHA256: signature.sign_hmac_sha256_with_client,
}


@dataclass(frozen=True)
class ApiKey:
    consumer_key: str
    consumer_secret: str
    permissions: Permissions = "read_write"

    def __post_init__(self) -> None:
        # WooCommerce keys its HMAC with the secret as it is, RFC 5849 (and
        # oauthlib) with the secret percent-encoded. WooCommerce's secrets are
        # `cs_` and hex digits, for which both agree; for any other secret the
        # simulator could not tell which a real shop would want, so it refuses it.
        if utils.escape(self.consumer_secret) != self.consumer_secret:
            raise ValueError(
                "a consumer secret may hold only letters, digits and -._~ "
                "(WooCommerce's are cs_ and hex digits)"
            )


@dataclass(frozen=True)
class AuthRequest:
    """What PHP hands WooCommerce about a request."""

    method: str
    request_uri: str  # path and query exactly as sent ($_SERVER['REQUEST_URI'])
    query: Mapping[str, str]  # decoded; the last value of a repeated name ($_GET)
    form: Mapping[str, str] = field(default_factory=dict)  # a POST's form body ($_POST)
    authorization: str | None = None
    is_ssl: bool = False


class NonceStore:
    """The nonces each key used in the last `NONCE_WINDOW` seconds of OAuth timestamps."""

    def __init__(self) -> None:
        self._used: dict[str, dict[str, int]] = {}

    def use(self, consumer_key: str, nonce: str, timestamp: int, now: float) -> bool:
        """Remember the nonce; False if this key already used it within the window."""
        used = self._used.setdefault(consumer_key, {})
        # Oldest first, as inserted: expiry stops at the first nonce still in
        # the window, so a long run does not rescan every nonce per request.
        # (A client's timestamps may be a little out of order; an old nonce
        # then lingers a moment longer, which is only stricter.)
        while used:
            old_nonce, old_timestamp = next(iter(used.items()))
            if old_timestamp >= now - NONCE_WINDOW:
                break
            del used[old_nonce]
        if nonce in used:
            return False
        used[nonce] = timestamp
        return True


def is_request_to_rest_api(request_uri: str) -> bool:
    """WooCommerce authenticates keys only for these URIs (`is_request_to_rest_api`)."""
    return "wp-json/wc/" in request_uri or "wp-json/wc-" in request_uri


def authenticate(
    request: AuthRequest,
    *,
    keys: Mapping[str, ApiKey],
    nonces: NonceStore,
    home_url: str,
    now: float,
) -> ApiKey | None:
    """The key the request authenticates with, or None if it is anonymous.

    Raises `RestError` (401) when credentials were given but are wrong.
    """
    if not is_request_to_rest_api(request.request_uri):
        return None
    basic_error = None
    if request.is_ssl:
        key, basic_error = _basic_authentication(request, keys)
        if key is not None:
            return key
    key = _oauth_authentication(request, keys=keys, nonces=nonces, home_url=home_url, now=now)
    if key is None and basic_error is not None:
        raise basic_error
    return key


def check_key_permissions(key: ApiKey, method: str) -> None:
    """Raise the 401 WooCommerce gives a key used beyond its permissions."""
    reads = method in ("GET", "HEAD")
    if key.permissions == "read" and not reads:
        raise RestError(401, _AUTH_ERROR, "The API key provided does not have write permissions.")
    if key.permissions == "write" and reads:
        raise RestError(401, _AUTH_ERROR, "The API key provided does not have read permissions.")


def _basic_authentication(
    request: AuthRequest, keys: Mapping[str, ApiKey]
) -> tuple[ApiKey | None, RestError | None]:
    consumer_key = request.query.get("consumer_key", "")
    consumer_secret = request.query.get("consumer_secret", "")
    if not (consumer_key and consumer_secret):
        consumer_key, consumer_secret = _basic_credentials(request.authorization)
    if not (consumer_key and consumer_secret):
        return None, None
    key = keys.get(consumer_key)
    if key is None:
        return None, None  # WooCommerce moves on to OAuth without an error
    if not hmac.compare_digest(key.consumer_secret.encode(), consumer_secret.encode()):
        return None, RestError(401, _AUTH_ERROR, "Consumer secret is invalid.")
    return key, None


def _basic_credentials(authorization: str | None) -> tuple[str, str]:
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    user, _, password = decoded.partition(":")
    return user, password


def _oauth_header_parameters(authorization: str | None) -> dict[str, str]:
    if not authorization or not authorization.strip().startswith("OAuth "):
        return {}
    return {
        name: unquote_plus(quoted or bare)
        for name, _, quoted, bare in _HEADER_PARAMETER.findall(authorization)
    }


def _oauth_authentication(
    request: AuthRequest,
    *,
    keys: Mapping[str, ApiKey],
    nonces: NonceStore,
    home_url: str,
    now: float,
) -> ApiKey | None:
    params = {**request.query, **request.form, **_oauth_header_parameters(request.authorization)}
    missing = [name for name in _OAUTH_PARAMETERS if not params.get(name)]
    if len(missing) == len(_OAUTH_PARAMETERS):
        return None  # not even trying OAuth: anonymous
    if missing:
        noun = "parameters" if len(missing) > 1 else "parameter"
        raise RestError(
            401,
            "woocommerce_rest_authentication_missing_parameter",
            f"Missing OAuth {noun} {', '.join(missing)}",
        )
    key = keys.get(params["oauth_consumer_key"])
    if key is None:
        raise RestError(401, _AUTH_ERROR, "Consumer key is invalid.")
    _check_signature(request, params, key, home_url)
    timestamp = _php_int(params["oauth_timestamp"])
    if not now - NONCE_WINDOW <= timestamp <= now + NONCE_WINDOW:
        raise RestError(401, _AUTH_ERROR, "Invalid timestamp.")
    if not nonces.use(key.consumer_key, params["oauth_nonce"], timestamp, now):
        raise RestError(401, _AUTH_ERROR, "Invalid nonce - nonce has already been used.")
    return key


def _check_signature(
    request: AuthRequest, params: Mapping[str, str], key: ApiKey, home_url: str
) -> None:
    signer = _SIGNERS.get(params["oauth_signature_method"])
    if signer is None:
        raise RestError(401, _AUTH_ERROR, "Invalid signature - signature method is invalid.")
    mismatch = RestError(401, _AUTH_ERROR, "Invalid signature - provided signature does not match.")
    # PHP decoded `+` to a space; WooCommerce undoes that, then URL-decodes once more.
    provided = unquote(params["oauth_signature"].replace(" ", "+"))
    try:
        base: str = signature.signature_base_string(
            request.method, _signed_url(request, home_url), _normalized_parameters(params)
        )
        expected: str = signer(base, Client(key.consumer_key, client_secret=key.consumer_secret))
        matches = hmac.compare_digest(expected.encode(), provided.encode())
    except UnicodeEncodeError:
        # A header's bytes that are not UTF-8 (kept by aiohttp as surrogates)
        # cannot be percent-encoded as UTF-8. PHP would sign the raw bytes; no
        # recording shows such a request, so the simulator strictly refuses it.
        raise mismatch from None
    if not matches:
        raise mismatch


def _normalized_parameters(params: Mapping[str, str]) -> str:
    """Every parameter but the signature, sorted by name as WooCommerce sorts them, then encoded.

    WooCommerce sorts the raw names with `strcmp` (byte order, which for UTF-8
    is code-point order) before encoding them; RFC 5849 sorts the encoded
    pairs. The two differ for names holding characters that encode to `%XX`:
    `a/` comes after `a-` here and before it in RFC 5849. PHP keeps one value
    per name, so values never decide the order.
    """
    signed = sorted((name, value) for name, value in params.items() if name != "oauth_signature")
    return "&".join(f"{utils.escape(name)}={utils.escape(value)}" for name, value in signed)


def _signed_url(request: AuthRequest, home_url: str) -> str:
    """`get_home_url(null, $request_path)` with the scheme of the connection, never the Host."""
    home = urlsplit(home_url)
    home_path = home.path.rstrip("/")
    request_path = urlsplit(request.request_uri).path
    if request_path.startswith(home_path + "/"):
        request_path = request_path[len(home_path) + 1 :]
    scheme = "https" if request.is_ssl else "http"
    return f"{scheme}://{home.netloc}{home_path}/{request_path.lstrip('/')}"


def _php_int(value: str) -> int:
    """PHP's `(int)` cast: leading digits, else 0."""
    match = re.match(r"\s*[+-]?\d+", value)
    return int(match.group()) if match else 0
