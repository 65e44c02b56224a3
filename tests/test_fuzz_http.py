"""Fuzzing the callback endpoint: whatever arrives, the answer is a 200, 400, 401, 404 or 413.

Bounded for CI (a few hundred examples); HYPOTHESIS_PROFILE=long runs many more.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.signature import sign

from support import MAIN_SECRET, MAIN_STORE_ID, signed_headers

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
signature_headers = st.one_of(
    st.just("valid"),
    st.none(),
    st.text(max_size=100),
    st.binary(max_size=48).map(lambda b: base64.b64encode(b).decode()),
)


@given(
    body=bodies,
    signature=signature_headers,
    path=st.sampled_from(["", "/main", "/nope", "/%2e%2e"]),
)
async def test_any_body_gets_an_allowed_answer(
    client: Any, body: bytes, signature: str | None, path: str
) -> None:
    headers: dict[str, str] = {"Content-Type": "application/octet-stream"}
    if signature == "valid":
        headers.update(signed_headers(body))
    elif signature is not None and all(32 <= ord(c) < 127 for c in signature):
        headers["X-Webhook-Signature"] = signature
    response = await client.post(f"/callbacks/cryptum{path}", data=body, headers=headers)
    assert response.status in ALLOWED, (response.status, await response.text())
    assert response.headers["Content-Type"].startswith("application/json")


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
