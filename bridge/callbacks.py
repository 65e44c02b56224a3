"""`POST /callbacks/cryptum[/{store}]`: verify a callback, store it, answer.

The order of checks is fixed: size, then the body's shape, then the store,
then the signature, then (unsigned callbacks only) the store's per-minute cap,
then the durable write. Nothing is acknowledged before it is committed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import NamedTuple

import structlog
from aiohttp import web

from . import log_context
from .app_keys import CONFIG, METRICS, REQUEST_ID, STORAGE, UNSIGNED_LIMITS, WORKER
from .config import Config, StoreConfig
from .errors import (
    HTTPError,
    InvalidPayloadError,
    InvalidSignatureError,
    PayloadTooLargeError,
    RateLimitedError,
    RequestTimeoutError,
    UnavailableError,
    UnknownStoreError,
)
from .payload import CallbackPayload, InvalidPayload, event_key, parse_callback
from .rate_limit import TokenBucket
from .signature import InvalidSignature, json_canonical, verify
from .storage import EventFacts, NewEvent, Recorded, StorageUnavailable
from .text import escape_controls

__all__ = ["receive_callback"]

SIGNATURE_HEADER = "X-Webhook-Signature"
# The most of an unknown store's id logged: enough for any real id, and a
# stranger's long value cannot bloat the log.
LOGGED_ID_MAX_CHARS = 100

log = structlog.get_logger("bridge.callbacks")


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """Read at most `limit` bytes within `timeout` seconds, refusing larger bodies early."""
    if request.headers.get("Content-Encoding", "identity").lower() != "identity":
        raise InvalidPayloadError("content_encoded", detail="compressed bodies are not accepted")
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLargeError("content_length_over_limit")
    if request.content.is_eof():
        # The whole body is in aiohttp's buffer (a callback's small body comes
        # with the head): nothing to wait for, so no timer and no read loop.
        body = request.content.read_nowait()
        if len(body) > limit:
            raise PayloadTooLargeError("body_over_limit")
        return body
    try:
        async with asyncio.timeout(timeout):
            return await _receive_body(request, limit)
    except TimeoutError:
        # A body trickling in ties up a connection: give up on it.
        raise RequestTimeoutError("body_too_slow") from None


async def _receive_body(request: web.Request, limit: int) -> bytes:
    try:
        if request.content_length is not None:
            return await request.read()
        received = bytearray()  # chunked: count as it arrives
        async for chunk in request.content.iter_any():
            received += chunk
            if len(received) > limit:
                raise PayloadTooLargeError("body_over_limit")
        return bytes(received)
    except ConnectionError:
        # The client went away mid-body: nobody will read the answer, but the
        # log should say what happened rather than report an internal error.
        raise InvalidPayloadError("body_incomplete", detail="the body ended early") from None


def loggable_id(value: str) -> str:
    """An id from a request as a log field: control characters escaped, at most 100 characters."""
    shown = escape_controls(value)
    if len(shown) <= LOGGED_ID_MAX_CHARS:
        return shown
    return shown[: LOGGED_ID_MAX_CHARS - 1] + "\u2026"


def _unknown_store_fields(
    path_store: str | None, payload: CallbackPayload | None
) -> dict[str, str]:
    """What names the store nobody configured: an id, never personal data."""
    fields = {}
    if payload is not None:
        fields["store_id"] = loggable_id(payload.store_id)
    if path_store is not None:
        fields["path_store"] = loggable_id(path_store)
    return fields


def _resolve_store(
    config: Config, path_store: StoreConfig | None, payload: CallbackPayload
) -> StoreConfig:
    """The store the callback is for: the one in the path, else the one its `storeId` names."""
    if path_store is None:
        store = config.store_for_cryptum_id(payload.store_id)
        if store is None:
            raise UnknownStoreError("unknown_store_id")
        return store
    store = path_store
    if payload.store_id != store.cryptum_store_id:
        raise InvalidPayloadError(
            "storeId_mismatch", detail="storeId does not belong to the store in the path"
        )
    return store


def _check_signature(
    request: web.Request, body: bytes, canonical: bytes, store: StoreConfig
) -> str:
    """The signature form that authenticates the body, or "unsigned" where the store allows it."""
    headers = request.headers.getall(SIGNATURE_HEADER, [])
    if len(headers) > 1:
        # Two signatures leave it ambiguous which one a proxy or a log saw.
        raise InvalidSignatureError("duplicated_header")
    if store.allow_unsigned and (not headers or store.webhook_secret is None):
        # Accepted only because every such callback is confirmed with Cryptum's
        # API before anything is applied (the config insists on an API key).
        return "unsigned"
    assert store.webhook_secret is not None
    try:
        form = verify(
            body,
            headers[0] if headers else None,
            store.webhook_secret.get_secret_value(),
            json_form=canonical,
        )
    except InvalidSignature as error:
        raise InvalidSignatureError(error.reason) from None
    return form.value


def _take_unsigned_place(request: web.Request, store: StoreConfig) -> TokenBucket:
    """Hold one of the store's places for a new unsigned callback, or refuse with 429."""
    bucket = request.app[UNSIGNED_LIMITS].bucket(store.name, store.unsigned_callbacks_per_minute)
    wait = bucket.try_take()
    if wait is not None:
        raise RateLimitedError("rate_limited", retry_after_seconds=wait)
    return bucket


class _Callback(NamedTuple):
    """A callback that passed every check, ready to store (a named tuple: built in C)."""

    store: StoreConfig
    payload: CallbackPayload
    body: bytes
    canonical: bytes
    signature_form: str
    # The unsigned-callback place it holds, if any: given back unless newly stored.
    bucket: TokenBucket | None


@dataclass(slots=True)
class _Seen:
    """What the checks found before one refused, for the refusal's log line and metric."""

    path_store: str | None
    store: StoreConfig | None = None
    payload: CallbackPayload | None = None


async def receive_callback(request: web.Request) -> web.Response:
    """Verify, store durably, answer: a 2xx only for what is on disk."""
    callback = await _verified(request)
    recorded = await _store(request, callback)
    if not recorded.duplicate:
        request.app[WORKER].wake()
    outcome = "duplicate" if recorded.duplicate else "accepted"
    request.app[METRICS].count_callback(callback.store.name, outcome)
    log.info(
        f"callback.{outcome}",
        event_id=recorded.event_id,
        status=callback.payload.status,
        signature_form=callback.signature_form,
    )
    return _answer(outcome, recorded.event_id)


def _answer(outcome: str, event_id: int) -> web.Response:
    """`{"status": outcome, "event_id": id}`, as `web.json_response` writes it.

    Formatted directly: every callback is answered with it, and the JSON
    encoder's machinery costs more than the rest of building the answer.
    """
    body = b'{"status": "%s", "event_id": %d}' % (outcome.encode(), event_id)
    return web.Response(body=body, content_type="application/json", charset="utf-8")


async def _verified(request: web.Request) -> _Callback:
    """Every check, in order; a refusal is logged and counted before it is answered."""
    seen = _Seen(path_store=request.match_info.get("store"))
    try:
        return await _check(request, seen)
    except HTTPError as error:
        # `details` hold field names and reasons only, never values from the body;
        # an unknown store's id is logged (not answered) so a typo can be seen.
        unknown = (
            _unknown_store_fields(seen.path_store, seen.payload)
            if isinstance(error, UnknownStoreError)
            else {}
        )
        order = (
            {}
            if seen.payload is None
            else {
                "cryptum_order_id": seen.payload.order_id,
                "woo_order_id": seen.payload.ecommerce_order_id,
            }
        )
        log.warning(
            "callback.rejected",
            status=error.status,
            reason=error.reason,
            **error.details,
            **unknown,
            **order,
        )
        metrics = request.app[METRICS]
        label = metrics.store_label(seen.store.name if seen.store is not None else seen.path_store)
        metrics.count_callback(label, error.code)
        raise


async def _check(request: web.Request, seen: _Seen) -> _Callback:
    config = request.app[CONFIG].current
    path_store = None if seen.path_store is None else config.store_named(seen.path_store)
    if seen.path_store is not None and path_store is None:
        raise UnknownStoreError("unknown_store_name")
    server = config.server
    body = await read_body(request, server.max_body_bytes, server.body_timeout_seconds)
    try:
        seen.payload = payload = parse_callback(body)
    except InvalidPayload as error:
        raise InvalidPayloadError("malformed", detail=error.detail) from None
    seen.store = store = _resolve_store(config, path_store, payload)
    # One binding for the three: each costs a copy of the context. A refusal
    # before this point names the order itself (`_verified`).
    log_context.bind(
        cryptum_order_id=payload.order_id,
        woo_order_id=payload.ecommerce_order_id,
        store=store.name,
    )
    canonical = json_canonical(body)
    signature_form = _check_signature(request, body, canonical, store)
    # Signed callbacks are never limited: only a stranger needs no secret.
    bucket = _take_unsigned_place(request, store) if signature_form == "unsigned" else None
    return _Callback(store, payload, body, canonical, signature_form, bucket)


async def _store(request: web.Request, callback: _Callback) -> Recorded:
    """Store the callback with the facts its delivery needs, durably; else a 503."""
    payload = callback.payload
    event = NewEvent(
        store=callback.store.name,
        body_sha256=event_key(callback.canonical),
        source="callback",
        signature_form=callback.signature_form,
        request_id=request[REQUEST_ID],
        cryptum_order_id=payload.order_id,
        woo_order_id=payload.ecommerce_order_id,
        status=payload.status,
        payload=callback.body,
        facts=EventFacts(
            transactions=tuple((t.protocol, t.hash) for t in payload.transactions or ()),
            message=payload.message,
        ),
    )
    recorded: Recorded | None = None
    try:
        recorded = await request.app[STORAGE].record_event(event)
    except StorageUnavailable as error:
        log.error("callback.unavailable", reason=error.reason)
        request.app[METRICS].count_callback(callback.store.name, "unavailable")
        raise UnavailableError(error.reason) from None
    finally:
        if callback.bucket is not None and (recorded is None or recorded.duplicate):
            # The place was taken before the write, so that concurrent callbacks
            # cannot all pass on the last one; only a newly stored callback keeps it.
            callback.bucket.give_back()
    return recorded
