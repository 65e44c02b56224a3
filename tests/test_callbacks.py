"""The callback endpoint on a real server over a real SQLite file: the answer table."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bridge.app import create_app
from bridge.app_keys import METRICS, STORAGE, UNSIGNED_LIMITS, WORKER
from bridge.callbacks import LOGGED_ID_MAX_CHARS
from bridge.config import Config, parse_config
from bridge.rate_limit import StoreLimits
from bridge.reload import apply_config
from bridge.signature import json_canonical, reference_canonical, sign
from bridge.storage import EventFacts

from support import (
    CUSTOMER_EMAIL,
    MAIN_SECRET,
    MAIN_STORE_ID,
    SECOND_SECRET,
    SECOND_STORE_ID,
    callback_body,
    config_document,
    signed_headers,
)


def stored_events(database_path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database_path) as connection:
        return connection.execute(
            "SELECT e.id, e.store, e.cryptum_order_id, e.woo_order_id, e.status, d.state"
            " FROM events e JOIN deliveries d ON d.event_id = e.id ORDER BY e.id"
        ).fetchall()


def stored_event(database_path: Path, event_id: int) -> dict[str, Any]:
    with sqlite3.connect(database_path) as connection:
        connection.row_factory = sqlite3.Row
        row = connection.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
    return dict(row)


def rejection(logs: Callable[[], list[dict[str, Any]]]) -> dict[str, Any]:
    """The one `callback.rejected` line logged since the test started."""
    (line,) = [line for line in logs() if line["event"] == "callback.rejected"]
    return line


async def logged(
    logs: Callable[[], list[dict[str, Any]]], event: str, *, timeout: float = 5.0
) -> dict[str, Any]:
    """The one `event` line, once the server has written it (it may lag the connection's end)."""
    deadline = time.monotonic() + timeout
    while not (lines := [line for line in logs() if line["event"] == event]):
        assert time.monotonic() < deadline, f"no {event} line within {timeout} s"
        await asyncio.sleep(0.01)
    (line,) = lines
    return line


def callback_of_size(size: int, **fields: Any) -> bytes:
    """A valid callback body of exactly `size` bytes (padded with an unknown field)."""
    unpadded = len(callback_body(padding="", **fields))
    body = callback_body(padding="x" * (size - unpadded), **fields)
    assert len(body) == size
    return body


async def in_chunks(body: bytes, count: int = 4) -> AsyncIterator[bytes]:
    """`body` as a chunked upload of `count` chunks, each sent once the last could be read.

    The pause lets the server take each chunk as it arrives, as it would from
    a real network, instead of the whole body at once.
    """
    size = -(-len(body) // count)
    for start in range(0, len(body), size):
        yield body[start : start + size]
        await asyncio.sleep(0.01)


def reference_form_headers(body: bytes, secret: str = MAIN_SECRET) -> dict[str, str]:
    """Signed as the reference plugin signs: over its own canonical form of the body."""
    digest = hmac.new(secret.encode(), reference_canonical(body), hashlib.sha256).digest()
    return {"X-Webhook-Signature": base64.b64encode(digest).decode("ascii")}


async def test_new_callback_is_accepted_and_stored_with_its_delivery(
    client: Any, database_path: Path
) -> None:
    body = callback_body(order_id="order-1", woo_order_id="42")
    response = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    assert response.status == 200
    # The answer is written by hand, not by json_response: its type must still be JSON's.
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    answer = await response.json()
    assert answer["status"] == "accepted"
    assert stored_events(database_path) == [
        (answer["event_id"], "main", "order-1", "42", "confirmed", "pending")
    ]


async def test_same_callback_again_is_a_duplicate_of_the_first(
    client: Any, database_path: Path
) -> None:
    body = callback_body()
    first = await (
        await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    ).json()
    again = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    assert again.status == 200
    assert await again.json() == {"status": "duplicate", "event_id": first["event_id"]}
    assert len(stored_events(database_path)) == 1


async def test_only_a_new_callback_wakes_the_delivery_worker(
    aiohttp_client: Any, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A duplicate adds no delivery, so there is nothing new for the worker to look at."""
    # No delivery loop: a finishing delivery wakes the worker too, which would
    # be counted here alongside the callbacks' wakes.
    client = await aiohttp_client(create_app(config, background=False))
    worker = client.app[WORKER]
    wakes: list[None] = []
    wake = worker.wake

    def counted_wake() -> None:
        wakes.append(None)
        wake()

    monkeypatch.setattr(worker, "wake", counted_wake)
    body = callback_body()
    first = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    assert (await first.json())["status"] == "accepted"
    assert len(wakes) == 1
    again = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    assert (await again.json())["status"] == "duplicate"
    assert len(wakes) == 1


async def test_pretty_printed_copy_of_a_compact_callback_is_a_duplicate(client: Any) -> None:
    compact = callback_body(order_id="same-order")
    pretty = compact.replace(b'":', b'": ').replace(b",", b",\n  ")
    assert pretty != compact
    first = await (
        await client.post("/callbacks/cryptum", data=compact, headers=signed_headers(compact))
    ).json()
    second = await (
        await client.post("/callbacks/cryptum", data=pretty, headers=signed_headers(pretty))
    ).json()
    assert second == {"status": "duplicate", "event_id": first["event_id"]}


async def test_a_different_status_for_the_same_order_is_a_new_event(client: Any) -> None:
    pending = callback_body(order_id="o-7", status="pending")
    confirmed = callback_body(order_id="o-7", status="confirmed")
    answers = [
        await (await client.post("/callbacks/cryptum", data=b, headers=signed_headers(b))).json()
        for b in (pending, confirmed)
    ]
    assert [a["status"] for a in answers] == ["accepted", "accepted"]
    assert answers[0]["event_id"] != answers[1]["event_id"]


async def test_same_body_for_two_stores_is_two_events(
    client: Any, tmp_path: Path, database_path: Path
) -> None:
    """A callback is a duplicate only within its store.

    A body names its Cryptum store, so the same bytes reach a second store of
    the config only once that store has taken over the Cryptum store id and
    its secret (here by a reload that swaps the two stores' ids and secrets).
    """
    body = callback_body(store_id=SECOND_STORE_ID)
    headers = signed_headers(body, SECOND_SECRET)
    in_second = await client.post("/callbacks/cryptum/second", data=body, headers=headers)
    assert in_second.status == 200
    first = await in_second.json()
    assert first["status"] == "accepted"

    document = config_document(database_path)
    main, second = document["stores"]
    for key in ("cryptum_store_id", "webhook_secret"):
        main[key], second[key] = second[key], main[key]
    apply_config(client.app, parse_config(document, base_dir=tmp_path))

    in_main = await client.post("/callbacks/cryptum/main", data=body, headers=headers)
    assert in_main.status == 200
    other = await in_main.json()
    assert other["status"] == "accepted"
    assert other["event_id"] != first["event_id"]
    # Within one store the same bytes are still the same callback.
    again = await client.post("/callbacks/cryptum/main", data=body, headers=headers)
    assert await again.json() == {"status": "duplicate", "event_id": other["event_id"]}

    order_id = json.loads(body)["orderId"]
    assert stored_events(database_path) == [
        (first["event_id"], "second", order_id, "101", "confirmed", "pending"),
        (other["event_id"], "main", order_id, "101", "confirmed", "pending"),
    ]
    with sqlite3.connect(database_path) as connection:
        stored = connection.execute("SELECT payload, body_sha256 FROM events").fetchall()
    assert [payload for payload, _ in stored] == [body, body]
    assert stored[0][1] == stored[1][1]


async def test_fifty_identical_concurrent_callbacks_give_one_accepted(
    client: Any, database_path: Path
) -> None:
    body = callback_body()
    headers = signed_headers(body)

    async def post() -> dict[str, Any]:
        response = await client.post("/callbacks/cryptum", data=body, headers=headers)
        assert response.status == 200
        return await response.json()

    answers = await asyncio.gather(*(post() for _ in range(50)))
    statuses = sorted(answer["status"] for answer in answers)
    assert statuses == ["accepted"] + ["duplicate"] * 49
    assert len({answer["event_id"] for answer in answers}) == 1
    assert len(stored_events(database_path)) == 1


async def test_concurrent_callbacks_share_commits(client: Any) -> None:
    bodies = [callback_body() for _ in range(100)]
    responses = await asyncio.gather(
        *(client.post("/callbacks/cryptum", data=b, headers=signed_headers(b)) for b in bodies)
    )
    assert all(response.status == 200 for response in responses)
    batches, items = client.app[STORAGE].commit_stats
    assert items == 100
    assert batches < items


@pytest.mark.parametrize(
    ("body", "detail_part"),
    [
        (b"not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"[" * 100_0 + b"]" * 100_0, "recursion limit exceeded"),
        (callback_body().replace(b'"orderId"', b'"orderID"'), "orderId: Field required"),
        (
            b'{"orderId": 5, "ecommerceOrderId": "1", "storeId": "s", "status": "confirmed"}',
            "orderId: Input should be a valid string",
        ),
        (
            b'{"orderId": "a", "ecommerceOrderId": 1, "storeId": "s", "status": "confirmed"}',
            "ecommerceOrderId: Input should be a valid string",
        ),
        (
            b'{"orderId": "a", "ecommerceOrderId": "1", "storeId": null, "status": "confirmed"}',
            "storeId: Input should be a valid string",
        ),
        (
            b'{"orderId": "a", "ecommerceOrderId": "1", "storeId": "s", "status": ["x"]}',
            "status: Input should be a valid string",
        ),
    ],
)
async def test_malformed_body_is_400_with_the_reason(
    client: Any, database_path: Path, body: bytes, detail_part: str, logs: Any
) -> None:
    response = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    assert response.status == 400
    answer = await response.json()
    assert answer["error"] == "invalid_payload"
    assert detail_part in answer["detail"]
    assert stored_events(database_path) == []
    rejected = rejection(logs)
    assert (rejected["reason"], rejected["detail"]) == ("malformed", answer["detail"])


async def test_unknown_fields_are_kept_in_the_stored_payload(
    client: Any, database_path: Path
) -> None:
    body = callback_body(newField={"nested": [1, 2]})
    answer = await (
        await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    ).json()
    with sqlite3.connect(database_path) as connection:
        (payload,) = connection.execute(
            "SELECT payload FROM events WHERE id = ?", (answer["event_id"],)
        ).fetchone()
    assert payload == body


@pytest.mark.parametrize(
    ("headers_for", "form"),
    [(signed_headers, "json"), (reference_form_headers, "reference")],
    ids=["json-form", "reference-form"],
)
async def test_the_stored_event_records_the_form_its_signature_matched(
    client: Any,
    database_path: Path,
    headers_for: Callable[[bytes], dict[str, str]],
    form: str,
    logs: Any,
) -> None:
    # An escaped quote followed by a space: the two canonical forms differ,
    # so a signature over one of them matches that one only.
    body = callback_body(status="pending", note='a" b', pretty=True)
    assert json_canonical(body) != reference_canonical(body)
    response = await client.post("/callbacks/cryptum", data=body, headers=headers_for(body))
    assert response.status == 200
    answer = await response.json()
    assert answer["status"] == "accepted"
    event = stored_event(database_path, answer["event_id"])
    assert (event["source"], event["signature_form"], event["status"]) == (
        "callback",
        form,
        "pending",
    )
    assert event["payload"] == body
    (line,) = [line for line in logs() if line["event"] == "callback.accepted"]
    assert (line["status"], line["signature_form"]) == ("pending", form)


async def test_the_stored_event_carries_the_requests_id(client: Any, database_path: Path) -> None:
    """The id in the answer and the logs finds the event later."""
    body = callback_body()
    headers = {**signed_headers(body), "X-Request-Id": "proxy-req.42"}
    from_proxy = await client.post("/callbacks/cryptum", data=body, headers=headers)
    event = stored_event(database_path, (await from_proxy.json())["event_id"])
    assert (event["request_id"], event["source"]) == ("proxy-req.42", "callback")

    body = callback_body()
    generated = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    event = stored_event(database_path, (await generated.json())["event_id"])
    assert event["request_id"] == generated.headers["X-Request-Id"]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing"),
        ({"X-Webhook-Signature": ""}, "empty"),
        ({"X-Webhook-Signature": "bm90IGEgc2lnbmF0dXJl"}, "wrong_length"),
        ({"X-Webhook-Signature": sign(b"{}", MAIN_SECRET)}, "mismatch"),
        ({"X-Webhook-Signature": "@@@"}, "not_base64"),
    ],
    ids=["missing", "empty", "short", "other-body", "not-base64"],
)
async def test_missing_or_wrong_signature_is_401_and_logged_with_why(
    client: Any, database_path: Path, headers: dict[str, str], reason: str, logs: Any
) -> None:
    body = callback_body()
    response = await client.post("/callbacks/cryptum", data=body, headers=headers)
    assert response.status == 401
    assert await response.json() == {"error": "invalid_signature"}
    assert stored_events(database_path) == []
    assert [line["event"] for line in logs() if line.get("status") == 401] == ["callback.rejected"]
    assert rejection(logs)["reason"] == reason


async def test_signature_with_another_stores_secret_is_401(client: Any) -> None:
    body = callback_body()
    response = await client.post(
        "/callbacks/cryptum", data=body, headers=signed_headers(body, SECOND_SECRET)
    )
    assert response.status == 401


async def test_tampered_body_is_401(client: Any) -> None:
    body = callback_body(status="cancelled")
    headers = signed_headers(body)
    tampered = body.replace(b'"cancelled"', b'"confirmed"')
    response = await client.post("/callbacks/cryptum", data=tampered, headers=headers)
    assert response.status == 401


async def test_duplicated_signature_headers_are_401(client: Any, logs: Any) -> None:
    body = callback_body()
    good = sign(body, MAIN_SECRET)
    headers = [("X-Webhook-Signature", good), ("X-Webhook-Signature", good)]
    response = await client.post("/callbacks/cryptum", data=body, headers=headers)
    assert response.status == 401
    assert await response.json() == {"error": "invalid_signature"}
    assert rejection(logs)["reason"] == "duplicated_header"


async def test_signature_header_name_is_case_insensitive(client: Any) -> None:
    body = callback_body()
    response = await client.post(
        "/callbacks/cryptum", data=body, headers={"x-webhook-signature": sign(body, MAIN_SECRET)}
    )
    assert response.status == 200


async def test_unknown_store_id_in_body_is_404(client: Any, database_path: Path) -> None:
    body = callback_body(store_id="no-such-store")
    response = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    assert response.status == 404
    assert await response.json() == {"error": "unknown_store"}
    assert stored_events(database_path) == []


async def test_unknown_store_in_path_is_404(client: Any) -> None:
    body = callback_body()
    response = await client.post("/callbacks/cryptum/nope", data=body, headers=signed_headers(body))
    assert response.status == 404
    assert await response.json() == {"error": "unknown_store"}


async def test_store_in_path_routes_the_callback(client: Any, database_path: Path) -> None:
    body = callback_body(store_id=SECOND_STORE_ID)
    response = await client.post(
        "/callbacks/cryptum/second", data=body, headers=signed_headers(body, SECOND_SECRET)
    )
    assert response.status == 200
    assert stored_events(database_path)[0][1] == "second"


async def test_store_id_not_matching_the_path_is_400(
    client: Any, database_path: Path, logs: Any
) -> None:
    body = callback_body(store_id=MAIN_STORE_ID)
    response = await client.post(
        "/callbacks/cryptum/second", data=body, headers=signed_headers(body, SECOND_SECRET)
    )
    assert response.status == 400
    detail = "storeId does not belong to the store in the path"
    assert await response.json() == {"error": "invalid_payload", "detail": detail}
    assert stored_events(database_path) == []
    rejected = rejection(logs)
    assert (rejected["reason"], rejected["detail"]) == ("storeId_mismatch", detail)
    # Both stores are configured: the rejection names neither id as an unknown one.
    assert "store_id" not in rejected and "path_store" not in rejected


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_wrong_method_is_405(client: Any, method: str) -> None:
    response = await client.request(method, "/callbacks/cryptum")
    assert response.status == 405
    assert await response.json() == {"error": "method_not_allowed"}
    assert response.headers["Allow"] == "POST"


async def test_a_compressed_body_is_400_and_never_inflated(
    client: Any, database_path: Path, logs: Any
) -> None:
    body = callback_body()
    response = await client.post(
        "/callbacks/cryptum",
        data=gzip.compress(body),
        headers={**signed_headers(body), "Content-Encoding": "gzip"},
    )
    assert response.status == 400
    assert await response.json() == {
        "error": "invalid_payload",
        "detail": "compressed bodies are not accepted",
    }
    assert stored_events(database_path) == []
    (rejected,) = [line for line in logs() if line["event"] == "callback.rejected"]
    assert rejected["reason"] == "content_encoded"


async def test_aiohttps_parse_errors_are_logged_without_the_bytes(client: Any, logs: Any) -> None:
    """A malformed request is a warning naming the error, never echoing the request."""
    host, port = client.server.host, client.server.port
    reader, writer = await asyncio.open_connection(host, port)
    body = callback_body()  # carries a customer's name and e-mail
    writer.write(
        b"POST /callbacks/cryptum HTTP/1.1\r\nHost: bridge\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nnot-a-chunk-size " + body + b"\r\n\r\n"
    )
    answer = await reader.read()
    writer.close()
    assert answer.split(b" ", 2)[1] == b"400"
    (line,) = [line for line in logs() if line["event"] == "http.malformed_request"]
    assert line["level"] == "warning"
    assert line["status"] == 400
    assert line["error"]
    assert "exception" not in line


async def test_body_over_the_limit_is_413_from_content_length(
    client: Any, database_path: Path, logs: Any
) -> None:
    body = callback_body(padding="x" * 5000)  # the test config allows 4096 bytes
    response = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    assert response.status == 413
    assert await response.json() == {"error": "payload_too_large"}
    assert stored_events(database_path) == []
    assert rejection(logs)["reason"] == "content_length_over_limit"


async def test_chunked_body_over_the_limit_is_413_before_it_is_read_whole(
    client: Any, logs: Any
) -> None:
    sent = 0

    async def endless_body():  # type: ignore[no-untyped-def]
        nonlocal sent
        for _ in range(10_000):  # 10 MB if it were all read
            sent += 1
            yield b" " * 1024

    response = await client.post("/callbacks/cryptum", data=endless_body())
    assert response.status == 413
    assert await response.json() == {"error": "payload_too_large"}
    assert sent < 10_000
    assert rejection(logs)["reason"] == "body_over_limit"


async def test_a_chunked_body_over_the_limit_that_came_whole_is_413(
    client: Any, config: Config, database_path: Path, logs: Any
) -> None:
    """A body already complete in aiohttp's buffer is measured too, not only one still arriving."""
    body = callback_of_size(config.server.max_body_bytes + 1)
    head = "".join(f"{name}: {value}\r\n" for name, value in signed_headers(body).items())
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    # Head, the whole body as one chunk and the last chunk in one write: the
    # request is complete before the handler runs.
    writer.write(
        b"POST /callbacks/cryptum HTTP/1.1\r\nHost: bridge\r\nConnection: close\r\n"
        + head.encode()
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % len(body)
        + body
        + b"\r\n0\r\n\r\n"
    )
    answer = await reader.read()
    writer.close()
    assert answer.split(b" ", 2)[1] == b"413"
    assert answer.endswith(b'{"error": "payload_too_large"}')
    assert stored_events(database_path) == []
    assert rejection(logs)["reason"] == "body_over_limit"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_of_exactly_the_limit_is_accepted_and_one_byte_more_is_413(
    client: Any, config: Config, database_path: Path, logs: Any, chunked: bool
) -> None:
    limit = config.server.max_body_bytes
    at_limit = callback_of_size(limit)
    over = callback_of_size(limit + 1)

    def data(body: bytes) -> Any:
        return in_chunks(body) if chunked else body

    accepted = await client.post(
        "/callbacks/cryptum", data=data(at_limit), headers=signed_headers(at_limit)
    )
    assert accepted.status == 200
    answer = await accepted.json()
    assert answer["status"] == "accepted"
    assert stored_event(database_path, answer["event_id"])["payload"] == at_limit

    refused = await client.post("/callbacks/cryptum", data=data(over), headers=signed_headers(over))
    assert refused.status == 413
    assert await refused.json() == {"error": "payload_too_large"}
    assert len(stored_events(database_path)) == 1
    expected = "body_over_limit" if chunked else "content_length_over_limit"
    assert rejection(logs)["reason"] == expected


async def test_a_chunked_body_is_stored_byte_for_byte(client: Any, database_path: Path) -> None:
    body = callback_body(pretty=True)
    response = await client.post(
        "/callbacks/cryptum", data=in_chunks(body, count=5), headers=signed_headers(body)
    )
    assert response.status == 200
    answer = await response.json()
    assert answer["status"] == "accepted"
    assert stored_event(database_path, answer["event_id"])["payload"] == body


async def test_storage_locked_by_another_process_is_503_then_recovers(
    client: Any, database_path: Path
) -> None:
    body = callback_body()
    blocker = sqlite3.connect(database_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock past the 200 ms busy timeout
    try:
        response = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
        assert response.status == 503
        assert await response.json() == {"error": "unavailable"}
        ready = await client.get("/readyz")
        assert ready.status == 503
        # The delivery loop may also have failed to claim from the locked database.
        reasons = (await ready.json())["reasons"]
        assert reasons[0] == "storage: sqlite_busy"
        assert all(reason.startswith("delivery: failing") for reason in reasons[1:])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert stored_events(database_path) == []
    retried = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    assert retried.status == 200
    assert (await retried.json())["status"] == "accepted"


async def test_full_database_is_503_and_nothing_is_acknowledged(
    client: Any, database_path: Path
) -> None:
    database = client.app[STORAGE]
    # SQLite reports SQLITE_FULL when a write needs more pages than allowed,
    # exactly as on a full disk.
    pages = (await database._connection.execute_fetchall("PRAGMA page_count"))[0][0]
    await database._connection.execute(f"PRAGMA max_page_count = {pages}")
    bodies = [callback_body(filler="y" * 3000) for _ in range(10)]
    responses = await asyncio.gather(
        *(client.post("/callbacks/cryptum", data=b, headers=signed_headers(b)) for b in bodies)
    )
    statuses = [response.status for response in responses]
    assert 503 in statuses
    assert set(statuses) <= {200, 503}
    acknowledged = statuses.count(200)
    assert len(stored_events(database_path)) == acknowledged

    await database._connection.execute("PRAGMA max_page_count = 1073741823")
    retry = await client.post(
        "/callbacks/cryptum", data=bodies[-1], headers=signed_headers(bodies[-1])
    )
    assert retry.status == 200


async def test_every_response_carries_a_request_id(client: Any) -> None:
    body = callback_body()
    accepted = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    rejected = await client.post("/callbacks/cryptum", data=body)
    wrong_method = await client.get("/callbacks/cryptum")
    ids = [r.headers.get("X-Request-Id") for r in (accepted, rejected, wrong_method)]
    assert all(ids) and len(set(ids)) == 3


async def test_a_safe_request_id_from_a_proxy_is_kept(client: Any, logs: Any) -> None:
    body = callback_body()
    headers = {**signed_headers(body), "X-Request-Id": "proxy-abc.123"}
    response = await client.post("/callbacks/cryptum", data=body, headers=headers)
    assert response.headers["X-Request-Id"] == "proxy-abc.123"
    accepted = [line for line in logs() if line["event"] == "callback.accepted"]
    assert accepted[0]["request_id"] == "proxy-abc.123"


async def test_an_unsafe_request_id_is_replaced(client: Any) -> None:
    response = await client.get("/healthz", headers={"X-Request-Id": "bad id\twith tab"})
    assert response.headers["X-Request-Id"] != "bad id\twith tab"


async def test_accepted_callback_is_logged_with_ids_and_without_personal_data(
    client: Any, logs: Any
) -> None:
    body = callback_body(order_id="order-log", woo_order_id="77")
    answer = await (
        await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    ).json()
    (line,) = [line for line in logs() if line["event"] == "callback.accepted"]
    assert line["event_id"] == answer["event_id"]
    assert line["store"] == "main"
    assert (line["status"], line["signature_form"]) == ("confirmed", "json")
    assert line["cryptum_order_id"] == "order-log"
    assert line["woo_order_id"] == "77"
    assert line["level"] == "info"
    assert "timestamp" in line and "request_id" in line
    assert CUSTOMER_EMAIL.encode() in body
    assert CUSTOMER_EMAIL not in str(logs())


async def test_connection_is_usable_after_a_413(client: Any) -> None:
    # aiohttp's client reuses connections; the next request must still work.
    big = b"{" + b" " * 10_000 + b"}"
    assert (await client.post("/callbacks/cryptum", data=big)).status == 413
    body = callback_body()
    response = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    assert response.status == 200


async def test_health_endpoints(client: Any) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert await ready.json() == {"status": "ready"}


async def test_unexpected_error_is_a_500_without_internals(
    client: Any, monkeypatch: pytest.MonkeyPatch, logs: Any
) -> None:
    async def broken(event: object) -> None:
        raise RuntimeError("internal detail /var/lib/secret-path")

    monkeypatch.setattr(client.app[STORAGE], "record_event", broken)
    body = callback_body()
    response = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    assert response.status == 500
    assert await response.json() == {"error": "internal"}
    assert any(line["event"] == "http.unhandled_error" for line in logs())


async def test_storage_unavailable_is_logged_with_why_and_counted(client: Any, logs: Any) -> None:
    connection = client.app[STORAGE]._connection
    await connection.execute("PRAGMA query_only = ON")  # every write fails, as on a read-only mount
    try:
        body = callback_body()
        response = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    finally:
        await connection.execute("PRAGMA query_only = OFF")
    assert response.status == 503
    assert await response.json() == {"error": "unavailable"}
    (line,) = [line for line in logs() if line["event"] == "callback.unavailable"]
    assert (line["level"], line["reason"], line["store"]) == ("error", "sqlite_readonly", "main")
    count = client.app[METRICS].registry.get_sample_value(
        "cryptum_bridge_callbacks_total", {"store": "main", "outcome": "unavailable"}
    )
    assert count == 1.0


async def test_read_only_database_is_503_then_recovers(client: Any, database_path: Path) -> None:
    connection = client.app[STORAGE]._connection
    # As SQLite reports a database on a read-only mount: SQLITE_READONLY on write.
    await connection.execute("PRAGMA query_only = ON")
    body = callback_body()
    refused = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    assert refused.status == 503
    assert stored_events(database_path) == []
    ready = await client.get("/readyz")
    # The delivery loop may also have failed to claim from the read-only database.
    reasons = (await ready.json())["reasons"]
    assert reasons[0] == "storage: sqlite_readonly"
    assert all(reason.startswith("delivery: failing") for reason in reasons[1:])

    await connection.execute("PRAGMA query_only = OFF")
    accepted = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    assert accepted.status == 200


async def test_unsigned_callbacks_only_where_the_store_allows_them(
    aiohttp_client: Any, tmp_path: Path, database_path: Path
) -> None:
    document = config_document(database_path)
    document["stores"][1].update(allow_unsigned=True, cryptum_api_key="api-key-second")
    unsigned_client = await aiohttp_client(create_app(parse_config(document, base_dir=tmp_path)))

    to_second = callback_body(store_id=SECOND_STORE_ID)
    accepted = await unsigned_client.post("/callbacks/cryptum", data=to_second)
    assert accepted.status == 200
    with sqlite3.connect(database_path) as connection:
        (form,) = connection.execute("SELECT signature_form FROM events").fetchone()
    assert form == "unsigned"
    # A wrong signature is still refused, and the other store still needs one.
    forged = await unsigned_client.post(
        "/callbacks/cryptum", data=to_second, headers={"X-Webhook-Signature": "AAAA"}
    )
    assert forged.status == 401
    to_main = callback_body()
    assert (await unsigned_client.post("/callbacks/cryptum", data=to_main)).status == 401


async def test_a_path_no_route_serves_is_a_json_404(client: Any) -> None:
    response = await client.get("/no/such/path")
    assert response.status == 404
    assert await response.json() == {"error": "not_found"}
    assert response.headers["X-Request-Id"]


async def test_a_slow_body_is_dropped_while_others_are_served(
    aiohttp_client: Any, tmp_path: Path, database_path: Path
) -> None:
    document = config_document(database_path)
    document["server"]["body_timeout_seconds"] = 0.5
    slow_client = await aiohttp_client(create_app(parse_config(document, base_dir=tmp_path)))

    async def trickle():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b" "
            await asyncio.sleep(0.2)

    slow = asyncio.create_task(slow_client.post("/callbacks/cryptum", data=trickle()))
    await asyncio.sleep(0.1)
    body = callback_body()
    fast = await slow_client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    assert fast.status == 200  # served while the slow one trickles
    response = await slow
    assert response.status == 408
    assert await response.json() == {"error": "request_timeout"}


async def test_a_body_that_stops_coming_is_408_and_logged(
    aiohttp_client: Any, tmp_path: Path, database_path: Path, logs: Any
) -> None:
    document = config_document(database_path)
    document["server"]["body_timeout_seconds"] = 0.05
    client = await aiohttp_client(create_app(parse_config(document, base_dir=tmp_path)))
    answered = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield callback_body()[:10]
        await answered.wait()  # the rest never comes while the server decides

    try:
        # Bounded, so that a server that never gives up fails the test rather than hangs it.
        async with asyncio.timeout(5):
            response = await client.post("/callbacks/cryptum", data=stalled())
            assert response.status == 408
            assert await response.json() == {"error": "request_timeout"}
    finally:
        answered.set()
    assert rejection(logs)["reason"] == "body_too_slow"


async def test_a_body_cut_short_by_its_client_is_logged_as_incomplete(
    config: Config, logs: Any
) -> None:
    """Nobody reads the answer, but the log says what happened, not an internal error."""
    # Served as `serve` serves it: aiohttp's test server would cancel the
    # handler when the client goes away, before it could log anything.
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"POST /callbacks/cryptum HTTP/1.1\r\nHost: bridge\r\nContent-Length: 100\r\n\r\n"
            + callback_body()[:10]
        )
        await writer.drain()
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""  # closed, unanswered
        writer.close()
        rejected = await logged(logs, "callback.rejected")
    finally:
        await runner.cleanup()
    assert (rejected["status"], rejected["reason"], rejected["detail"]) == (
        400,
        "body_incomplete",
        "the body ended early",
    )
    assert not [line for line in logs() if line["event"] == "http.unhandled_error"]


class FakeClock:
    """The rate limiter's clock, moved by the test instead of sleeping."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


async def unsigned_store_client(
    aiohttp_client: Any, tmp_path: Path, database_path: Path, clock: FakeClock, *, cap: int = 3
) -> Any:
    """The second store accepts unsigned callbacks, `cap` new ones a minute; the first does not."""
    document = config_document(database_path)
    document["stores"][1].update(
        allow_unsigned=True,
        cryptum_api_key="api-key-second",
        unsigned_callbacks_per_minute=cap,
    )
    app = create_app(parse_config(document, base_dir=tmp_path))
    app[UNSIGNED_LIMITS] = StoreLimits(clock=clock)
    return await aiohttp_client(app)


async def post_unsigned(client: Any, body: bytes | None = None) -> Any:
    body = body if body is not None else callback_body(store_id=SECOND_STORE_ID)
    return await client.post("/callbacks/cryptum", data=body)


def orders_stored(database_path: Path) -> list[str]:
    return [row[2] for row in stored_events(database_path)]


async def test_new_unsigned_callbacks_past_the_cap_are_429_with_retry_after(
    aiohttp_client: Any, tmp_path: Path, database_path: Path, logs: Any
) -> None:
    clock = FakeClock()
    client = await unsigned_store_client(aiohttp_client, tmp_path, database_path, clock)
    for _ in range(3):
        response = await post_unsigned(client)
        assert response.status == 200
        assert (await response.json())["status"] == "accepted"

    refused = await post_unsigned(client, callback_body(store_id=SECOND_STORE_ID, order_id="over"))
    assert refused.status == 429
    assert await refused.json() == {"error": "rate_limited"}
    assert refused.headers["Retry-After"] == "20"  # the next place frees in 60 / 3 s
    assert refused.headers["X-Request-Id"]
    assert len(stored_events(database_path)) == 3
    assert "over" not in orders_stored(database_path)

    clock.now += 14.5
    again = await post_unsigned(client)
    assert again.status == 429
    assert again.headers["Retry-After"] == "6"  # 5.5 s left, in whole seconds rounded up

    (rejected, _) = [line for line in logs() if line["event"] == "callback.rejected"]
    assert (rejected["status"], rejected["reason"], rejected["store"]) == (
        429,
        "rate_limited",
        "second",
    )
    metrics = await (await client.get("/metrics")).text()
    assert 'cryptum_bridge_callbacks_total{outcome="rate_limited",store="second"} 2.0' in metrics
    assert 'cryptum_bridge_callbacks_total{outcome="accepted",store="second"} 3.0' in metrics


async def test_signed_callbacks_are_never_limited_on_an_unsigned_store(
    aiohttp_client: Any, tmp_path: Path, database_path: Path
) -> None:
    client = await unsigned_store_client(aiohttp_client, tmp_path, database_path, FakeClock())
    # Signed ones first: they must not use up the unsigned cap ...
    for _ in range(5):
        body = callback_body(store_id=SECOND_STORE_ID)
        signed = await client.post(
            "/callbacks/cryptum", data=body, headers=signed_headers(body, SECOND_SECRET)
        )
        assert signed.status == 200
    assert [(await post_unsigned(client)).status for _ in range(4)] == [200, 200, 200, 429]
    # ... and still pass once it is used up.
    for _ in range(5):
        body = callback_body(store_id=SECOND_STORE_ID)
        signed = await client.post(
            "/callbacks/cryptum", data=body, headers=signed_headers(body, SECOND_SECRET)
        )
        assert signed.status == 200
        assert (await signed.json())["status"] == "accepted"
    assert len(stored_events(database_path)) == 13
    with sqlite3.connect(database_path) as connection:
        forms = [row[0] for row in connection.execute("SELECT signature_form FROM events")]
    assert forms.count("unsigned") == 3


async def test_duplicates_of_an_unsigned_callback_do_not_use_up_the_cap(
    aiohttp_client: Any, tmp_path: Path, database_path: Path
) -> None:
    client = await unsigned_store_client(
        aiohttp_client, tmp_path, database_path, FakeClock(), cap=2
    )
    body = callback_body(store_id=SECOND_STORE_ID)
    first = await (await post_unsigned(client, body)).json()
    for _ in range(5):
        again = await post_unsigned(client, body)
        assert again.status == 200
        assert await again.json() == {"status": "duplicate", "event_id": first["event_id"]}
    assert (await post_unsigned(client)).status == 200  # the second place was still free
    assert (await post_unsigned(client)).status == 429
    assert len(stored_events(database_path)) == 2


async def test_unsigned_callbacks_are_accepted_again_once_the_minute_has_passed(
    aiohttp_client: Any, tmp_path: Path, database_path: Path
) -> None:
    clock = FakeClock()
    client = await unsigned_store_client(aiohttp_client, tmp_path, database_path, clock)
    assert [(await post_unsigned(client)).status for _ in range(4)] == [200, 200, 200, 429]
    clock.now += 20  # one place frees
    assert [(await post_unsigned(client)).status for _ in range(2)] == [200, 429]
    clock.now += 60  # a whole minute: the whole cap, and no more
    assert [(await post_unsigned(client)).status for _ in range(4)] == [200, 200, 200, 429]
    assert len(stored_events(database_path)) == 7


async def test_an_unsigned_callback_that_could_not_be_stored_keeps_its_place(
    aiohttp_client: Any, tmp_path: Path, database_path: Path
) -> None:
    client = await unsigned_store_client(
        aiohttp_client, tmp_path, database_path, FakeClock(), cap=1
    )
    connection = client.app[STORAGE]._connection
    await connection.execute("PRAGMA query_only = ON")  # every write fails: 503
    assert (await post_unsigned(client)).status == 503
    await connection.execute("PRAGMA query_only = OFF")
    assert (await post_unsigned(client)).status == 200
    assert (await post_unsigned(client)).status == 429


async def test_concurrent_unsigned_callbacks_never_pass_the_cap(
    aiohttp_client: Any, tmp_path: Path, database_path: Path
) -> None:
    client = await unsigned_store_client(aiohttp_client, tmp_path, database_path, FakeClock())
    responses = await asyncio.gather(*(post_unsigned(client) for _ in range(20)))
    assert sorted(response.status for response in responses) == [200] * 3 + [429] * 17
    assert len(stored_events(database_path)) == 3


async def test_a_reload_applies_a_changed_unsigned_cap(
    aiohttp_client: Any, tmp_path: Path, database_path: Path
) -> None:
    clock = FakeClock()
    client = await unsigned_store_client(aiohttp_client, tmp_path, database_path, clock)
    assert [(await post_unsigned(client)).status for _ in range(4)] == [200, 200, 200, 429]

    document = config_document(database_path)
    document["stores"][1].update(
        allow_unsigned=True, cryptum_api_key="api-key-second", unsigned_callbacks_per_minute=5
    )
    apply_config(client.app, parse_config(document, base_dir=tmp_path))
    # Three of five used: two more now, then one every 12 s.
    assert [(await post_unsigned(client)).status for _ in range(3)] == [200, 200, 429]
    response = await post_unsigned(client)
    assert response.headers["Retry-After"] == "12"

    document["stores"][1]["unsigned_callbacks_per_minute"] = 1
    apply_config(client.app, parse_config(document, base_dir=tmp_path))
    clock.now += 59
    assert (await post_unsigned(client)).status == 429
    clock.now += 1
    assert (await post_unsigned(client)).status == 200


# An unknown store's id is logged, so that a typo in cryptum_store_id shows.


async def test_an_unknown_store_id_is_logged_with_the_rejection(client: Any, logs: Any) -> None:
    body = callback_body(store_id="3ac0d5b2-typo-in-the-dashboard")
    response = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    assert response.status == 404
    assert await response.json() == {"error": "unknown_store"}  # answered as before
    (rejected,) = [line for line in logs() if line["event"] == "callback.rejected"]
    assert rejected["reason"] == "unknown_store_id"
    assert rejected["store_id"] == "3ac0d5b2-typo-in-the-dashboard"
    # Refused before its store was known, it still names its order.
    body_fields = json.loads(body)
    assert (rejected["cryptum_order_id"], rejected["woo_order_id"]) == (
        body_fields["orderId"],
        body_fields["ecommerceOrderId"],
    )
    assert "store" not in rejected


async def test_a_logged_unknown_store_id_is_escaped_and_at_most_100_characters(
    client: Any, logs: Any
) -> None:
    body = callback_body(store_id="evil\n\x1b[31m" + "x" * 180)  # storeId: 200 at most
    response = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    assert response.status == 404
    (rejected,) = [line for line in logs() if line["event"] == "callback.rejected"]
    logged = rejected["store_id"]
    assert len(logged) == 100
    assert logged.startswith("evil\\n\\x1b[31mxxx") and logged.endswith("x\u2026")


async def test_an_unknown_store_id_is_logged_whole_up_to_the_maximum_and_shortened_past_it(
    client: Any, logs: Any
) -> None:
    longest = "a" * LOGGED_ID_MAX_CHARS
    longer = "b" * (LOGGED_ID_MAX_CHARS + 1)
    for store_id in (longest, longer):
        body = callback_body(store_id=store_id)
        response = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
        assert response.status == 404
    logged_ids = [line["store_id"] for line in logs() if line["event"] == "callback.rejected"]
    assert logged_ids == [longest, "b" * (LOGGED_ID_MAX_CHARS - 1) + "\u2026"]


async def test_an_unknown_store_in_the_path_is_logged(client: Any, logs: Any) -> None:
    body = callback_body()
    response = await client.post("/callbacks/cryptum/nope", data=body, headers=signed_headers(body))
    assert response.status == 404
    (rejected,) = [line for line in logs() if line["event"] == "callback.rejected"]
    assert (rejected["reason"], rejected["path_store"]) == ("unknown_store_name", "nope")


async def test_the_facts_a_delivery_needs_are_stored_with_the_callback(
    client: Any, database_path: Path
) -> None:
    body = callback_body(
        transactions=[
            {"protocol": "CELO", "hash": "0xc0ffee"},
            {"protocol": "POLYGON", "hash": "0xbeef"},
        ]
    )
    response = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    event = stored_event(database_path, (await response.json())["event_id"])
    assert EventFacts.from_json(event["facts"]) == EventFacts(
        transactions=(("CELO", "0xc0ffee"), ("POLYGON", "0xbeef")),
        message="Payment was successful",
    )


async def test_a_callback_without_transactions_or_message_stores_empty_facts(
    client: Any, database_path: Path
) -> None:
    document = json.loads(callback_body())
    del document["transactions"], document["message"]
    body = json.dumps(document).encode()
    response = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    event = stored_event(database_path, (await response.json())["event_id"])
    assert EventFacts.from_json(event["facts"]) == EventFacts()


async def test_a_requests_log_lines_carry_none_of_the_previous_requests_ids(
    client: Any, logs: Any
) -> None:
    # One after the other, so the client sends both over one kept-alive connection.
    body = callback_body(order_id="order-first", woo_order_id="41")
    accepted = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    assert accepted.status == 200
    refused = await client.post("/callbacks/cryptum", data=b"{", headers=signed_headers(b"{"))
    assert refused.status == 400
    first, second = await logged(logs, "callback.accepted"), rejection(logs)
    assert (first["cryptum_order_id"], first["woo_order_id"], first["store"]) == (
        "order-first",
        "41",
        "main",
    )
    assert not {"cryptum_order_id", "woo_order_id", "store", "event_id"} & set(second)
    assert second["request_id"] != first["request_id"]
