"""One JSON request to a service the bridge calls, and one way its failures are told.

Both clients (`woocommerce.py`, `cryptum.py`) send through `call_json`: a
2xx answer comes back decoded, anything else as an `UpstreamFailure` whose
kind the service's own `classify` decides from the status and the body.
Failures with no answer at all (refused, reset, timed out, TLS) are told
here alike for both.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from yarl import URL

from .upstream import FailureKind, UpstreamFailure, connection_failure

__all__ = ["Service", "call_json", "retry_after_seconds"]


@dataclass(frozen=True, slots=True)
class Service:
    """What `call_json` needs to know of a service to tell its failures."""

    # The metrics label of its failures: "woocommerce" or "cryptum".
    label: str
    # How reasons name it: "WooCommerce", "the Cryptum API".
    name: str
    # The failure an answer other than 2xx means: (status, decoded body or
    # None, headers) -> the failure.
    classify: Callable[[int, Any, Mapping[str, str]], UpstreamFailure]
    # What to check when its certificate does not verify.
    tls_hint: str


async def call_json(
    session: aiohttp.ClientSession,
    service: Service,
    method: str,
    url: URL,
    *,
    headers: Mapping[str, str],
    timeout: aiohttp.ClientTimeout,
    params: Mapping[str, str] | None = None,
    body: dict[str, Any] | None = None,
    tls: ssl.SSLContext | None = None,
) -> Any:
    """Send one request; the decoded JSON of a 2xx answer, else an `UpstreamFailure`."""
    try:
        return await _send(session, service, method, url, headers, timeout, params, body, tls)
    except UpstreamFailure as failure:
        failure.service = service.label
        raise


async def _send(
    session: aiohttp.ClientSession,
    service: Service,
    method: str,
    url: URL,
    headers: Mapping[str, str],
    timeout: aiohttp.ClientTimeout,
    params: Mapping[str, str] | None,
    body: dict[str, Any] | None,
    tls: ssl.SSLContext | None,
) -> Any:
    try:
        async with session.request(
            method,
            url,
            json=body,
            params=params,
            headers={"Accept": "application/json", **headers},
            timeout=timeout,
            ssl=tls if tls is not None else True,
        ) as response:
            try:
                answer = await response.json(content_type=None)
            except ValueError:
                answer = None  # not JSON: a proxy's page, or PHP cut short
            if response.status >= 300:
                raise service.classify(response.status, answer, response.headers)
            if answer is None:
                raise UpstreamFailure(
                    FailureKind.TRANSIENT,
                    f"{service.name} answered {response.status} without JSON",
                    response.status,
                )
            return answer
    except TimeoutError:
        raise connection_failure(
            f"no answer from {service.name} within {timeout.total} s"
        ) from None
    except aiohttp.ClientSSLError as error:
        reason = f"TLS verification of {service.name} failed ({type(error).__name__}): "
        raise UpstreamFailure(FailureKind.CONFIG, reason + service.tls_hint) from None
    except aiohttp.ClientError as error:
        raise connection_failure(f"{service.name} unreachable: {type(error).__name__}") from None


def retry_after_seconds(header: str | None) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date), if any."""
    if not header:
        return None
    if header.strip().isdigit():
        return float(header.strip())
    try:
        return max(0.0, parsedate_to_datetime(header).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
