"""Signature verification: the shared vectors, both canonical forms, linear time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.signature import (
    InvalidSignature,
    SignatureForm,
    json_canonical,
    reference_canonical,
    sign,
    verify,
)

VECTORS_FILE = Path(__file__).parent / "vectors" / "cryptum-signature-vectors.json"
VECTORS = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
POSITIVE = {vector["name"]: vector for vector in VECTORS["positive"]}
NEGATIVE = {vector["name"]: vector for vector in VECTORS["negative"]}


def _quadratic_reference(body: bytes) -> bytes:
    """The reference plugin's rule, written the slow, obvious way (for comparison only)."""
    white_space = b" \t\n\x0b\x0c\r"
    kept = bytearray()
    for index, byte in enumerate(body):
        if byte in white_space and body.count(b'"', index) % 2 == 0:
            continue
        kept.append(byte)
    return bytes(kept)


@pytest.mark.parametrize("name", sorted(POSITIVE))
def test_positive_vector_canonical_forms(name: str) -> None:
    vector = POSITIVE[name]
    body = vector["body"].encode()
    assert json_canonical(body) == vector["json_canonical"].encode()
    assert reference_canonical(body) == vector["php_regex_canonical"].encode()


@pytest.mark.parametrize("name", sorted(POSITIVE))
def test_positive_vector_verifies_in_both_forms(name: str) -> None:
    vector = POSITIVE[name]
    body = vector["body"].encode()
    assert verify(body, vector["signature"], vector["secret"]) is SignatureForm.JSON
    accepted = verify(body, vector["php_regex_signature"], vector["secret"])
    if vector["php_regex_signature"] == vector["signature"]:
        assert accepted is SignatureForm.JSON
    else:
        assert accepted is SignatureForm.REFERENCE


def test_the_vectors_include_a_body_where_the_forms_differ() -> None:
    differing = [v for v in POSITIVE.values() if v["signature"] != v["php_regex_signature"]]
    assert [v["name"] for v in differing] == ["escaped_quote_in_string"]


@pytest.mark.parametrize("name", sorted(NEGATIVE))
def test_negative_vector_is_refused(name: str) -> None:
    vector = NEGATIVE[name]
    assert vector["must_verify"] is False
    with pytest.raises(InvalidSignature):
        verify(vector["body"].encode(), vector["signature"], vector["secret"])


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "empty"),
        ("   ", "empty"),
        ("not base64 at all!", "not_base64"),
        (base64.b64encode(b"short").decode(), "wrong_length"),
        (base64.b64encode(bytes(32)).decode(), "mismatch"),
    ],
)
def test_each_failure_has_its_reason(header: str | None, reason: str) -> None:
    with pytest.raises(InvalidSignature) as caught:
        verify(b'{"a":1}', header, "secret")
    assert caught.value.reason == reason


def test_sign_matches_the_shared_vector() -> None:
    vector = POSITIVE["pretty_2space"]
    assert sign(vector["body"].encode(), vector["secret"]) == vector["signature"]


def test_signature_is_plain_hmac_sha256_of_the_canonical_body() -> None:
    body = b'{ "a" : "b c" }'
    expected = base64.b64encode(hmac.new(b"k", b'{"a":"b c"}', hashlib.sha256).digest())
    assert sign(body, "k") == expected.decode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values, st.integers(min_value=0, max_value=4), st.booleans())
def test_json_canonical_equals_compact_reserialisation(
    value: object, indent: int, ascii_only: bool
) -> None:
    pretty = json.dumps(value, indent=indent or None, ensure_ascii=ascii_only).encode()
    compact = json.dumps(value, separators=(",", ":"), ensure_ascii=ascii_only).encode()
    assert json_canonical(pretty) == compact


@given(
    st.binary(max_size=64) | st.text(alphabet=' \t\n\r\x0b\x0c"\\ab{}', max_size=64).map(str.encode)
)
def test_reference_canonical_follows_the_rule_byte_for_byte(body: bytes) -> None:
    assert reference_canonical(body) == _quadratic_reference(body)


@given(st.text(alphabet=' \t\n\r"\\ab', max_size=64).map(str.encode))
def test_json_canonical_never_fails_on_garbage(body: bytes) -> None:
    # Unterminated strings and stray backslashes must not raise or hang.
    assert len(json_canonical(body)) <= len(body)


def test_adversarial_body_is_verified_in_linear_time() -> None:
    """60 KiB of spaces and quotes: the reference regex is quadratic on it, ours is not.

    A regression guard, not a benchmark (bench/signature.py prints the figures):
    the bound is two orders of magnitude above the expected few milliseconds,
    while a quadratic rule takes seconds on this input.
    """
    body = b' "' * (30 * 1024)
    header = sign(body, "secret")
    reference_regex = re.compile(rb'[ \t\n\x0b\x0c\r](?=(?:[^"]*"[^"]*")*[^"]*$)')
    small = body[:6000]
    assert reference_regex.sub(b"", small) == reference_canonical(small)

    started = time.perf_counter()
    verify(body, header, "secret")
    assert time.perf_counter() - started < 0.5
