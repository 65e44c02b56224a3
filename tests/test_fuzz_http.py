"""Fuzzing the callback endpoint: whatever arrives, the answer is a 200, 400, 401, 404 or 413.

Only a body signed with the secret of the store it names may get a 2xx; an
unsigned, wrongly signed or tampered one never does, and nothing of it is
stored. Bounded for CI (a few hundred examples); HYPOTHESIS_PROFILE=long runs
many more.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.app_keys import STORAGE
from bridge.signature import sign

from support import MAIN_SECRET, MAIN_STORE_ID, SECOND_SECRET, callback_body, signed_headers

settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "long",
    max_examples=5000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ALLOWED = {200, 400, 401, 404, 413}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)
callback_fields = st.fixed_dictionaries(
    {},
    optional={
        "orderId": json_values,
        "ecommerceOrderId": json_values,
        "storeId": st.just(MAIN_STORE_ID) | json_values,
        "status": st.sampled_from(["confirmed", "pending", "bogus"]) | json_values,
        "transactions": json_values,
        "message": json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=5000),
    json_values.map(lambda v: json.dumps(v).encode()),
    callback_fields.map(lambda v: json.dumps(v).encode()),
    st.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=1, max_value=6000).map(lambda n: b"1" * n),
    st.binary(min_size=1, max_size=64).map(lambda b: b'{"orderId": "' + b + b'"}'),
)
# Well-formed callbacks for the main store: a forgery worth the name looks like one.
callbacks = st.builds(
    lambda order_id, woo_order_id, status: callback_body(
        order_id=order_id, woo_order_id=str(woo_order_id), status=status
    ),
    st.text(alphabet="abcdef0123456789-", min_size=1, max_size=36),
    st.integers(min_value=1, max_value=10**6),
    st.sampled_from(["confirmed", "cancelled", "failed", "pending", "on-hold"]),
)
any_bodies = bodies | callbacks
# Anything but the right signature of the body as sent.
wrong_signatures = st.one_of(
    st.none(),
    st.text(max_size=100),
    st.binary(max_size=48).map(lambda b: base64.b64encode(b).decode()),
    st.sampled_from(["", "=", sign(b"{}", MAIN_SECRET)]),
)
paths = st.sampled_from(["", "/main", "/second", "/nope", "/%2e%2e"])


async def stored_events(client: Any) -> int:
    count: int = await client.app[STORAGE].count_events()
    return count


def refused(status: int) -> bool:
    return status in ALLOWED and not 200 <= status < 300


@given(body=any_bodies, path=paths)
async def test_a_signed_body_gets_an_allowed_answer(client: Any, body: bytes, path: str) -> None:
    response = await client.post(
        f"/callbacks/cryptum{path}", data=body, headers=signed_headers(body)
    )
    assert response.status in ALLOWED, (response.status, await response.text())
    assert response.headers["Content-Type"].startswith("application/json")
    if response.status == 200:
        # Accepted means stored, byte for byte, for the store the body names.
        answer = await response.json()
        event = await client.app[STORAGE].get_event(answer["event_id"])
        assert event is not None
        assert (event.store, event.payload) == ("main", body)


@given(body=any_bodies, signature=wrong_signatures, other_store=st.booleans(), path=paths)
async def test_an_unsigned_or_wrongly_signed_body_is_never_accepted(
    client: Any, body: bytes, signature: str | None, other_store: bool, path: str
) -> None:
    headers: dict[str, str] = {"Content-Type": "application/octet-stream"}
    if other_store:
        # A real signature, made with the secret of a store the body does not name.
        headers.update(signed_headers(body, SECOND_SECRET))
    elif signature is not None and all(32 <= ord(c) < 127 for c in signature):
        headers["X-Webhook-Signature"] = signature
    response = await client.post(f"/callbacks/cryptum{path}", data=body, headers=headers)
    assert refused(response.status), (response.status, await response.text())
    assert response.headers["Content-Type"].startswith("application/json")
    assert await stored_events(client) == 0


# Changes that leave a callback well formed, so that only its signature can refuse it.
TAMPERINGS = {
    "another status": lambda d: (
        d | {"status": "cancelled" if d["status"] == "confirmed" else "confirmed"}
    ),
    "another order": lambda d: d | {"ecommerceOrderId": str(int(d["ecommerceOrderId"]) + 1)},
    "another payment": lambda d: d | {"orderId": d["orderId"] + "0"},
    "a field added": lambda d: d | {"orderTotal": "0.01"},
}


@given(body=callbacks, tampering=st.sampled_from(sorted(TAMPERINGS)), path=paths)
async def test_a_tampered_callback_is_never_accepted(
    client: Any, body: bytes, tampering: str, path: str
) -> None:
    """A callback's signature, sent with the callback changed: 401 where the store is known."""
    tampered = json.dumps(TAMPERINGS[tampering](json.loads(body))).encode()
    response = await client.post(
        f"/callbacks/cryptum{path}",
        data=tampered,
        headers={"X-Webhook-Signature": sign(body, MAIN_SECRET)},
    )
    expected = {"": 401, "/main": 401, "/second": 400, "/nope": 404, "/%2e%2e": 404}
    assert response.status == expected[path], (response.status, await response.text())
    assert await stored_events(client) == 0


@given(
    header_name=st.sampled_from(
        ["X-Webhook-Signature", "x-webhook-signature", "X-WEBHOOK-SIGNATURE"]
    ),
    extra=st.dictionaries(
        st.from_regex(r"X-[A-Za-z]{1,10}", fullmatch=True),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=50),
        max_size=4,
    ),
)
async def test_header_variants_never_break_the_answer(
    client: Any, header_name: str, extra: dict[str, str]
) -> None:
    body = json.dumps(
        {"orderId": "o", "ecommerceOrderId": "1", "storeId": MAIN_STORE_ID, "status": "confirmed"}
    ).encode()
    headers = {**extra, header_name: sign(body, MAIN_SECRET)}
    response = await client.post("/callbacks/cryptum", data=body, headers=headers)
    assert response.status == 200
    answer = await response.json()
    event = await client.app[STORAGE].get_event(answer["event_id"])
    assert event is not None and event.payload == body
