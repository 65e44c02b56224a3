"""Signature verification: the shared vectors, both canonical forms, linear time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import signature as signature_module
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


def test_the_reason_is_also_the_exceptions_message() -> None:
    with pytest.raises(InvalidSignature) as caught:
        verify(b"{}", None, "secret")
    assert str(caught.value) == caught.value.reason == "missing"


def _flip_byte(header: str, index: int) -> str:
    digest = bytearray(base64.b64decode(header))
    digest[index] ^= 0x01
    return base64.b64encode(bytes(digest)).decode()


@pytest.mark.parametrize("index", [0, 16, 31], ids=["first", "middle", "last"])
@pytest.mark.parametrize("name", ["compact", "escaped_quote_in_string"])
def test_a_forgery_differing_in_one_byte_is_refused(name: str, index: int) -> None:
    """Same length, same encoding, one bit off: refused, whichever byte it is.

    The escaped-quote body has two canonical forms, so the forgery is also
    checked against the reference form before it is refused.
    """
    vector = POSITIVE[name]
    body = vector["body"].encode()
    for genuine in {vector["signature"], vector["php_regex_signature"]}:
        forged = _flip_byte(genuine, index)
        assert len(forged) == len(genuine)
        with pytest.raises(InvalidSignature) as caught:
            verify(body, forged, vector["secret"])
        assert caught.value.reason == "mismatch"


def test_a_wrong_signature_is_refused_when_the_canonical_forms_differ() -> None:
    vector = POSITIVE["escaped_quote_in_string"]
    body = vector["body"].encode()
    assert reference_canonical(body) != json_canonical(body)
    with pytest.raises(InvalidSignature) as caught:
        verify(body, base64.b64encode(bytes(32)).decode(), vector["secret"])
    assert caught.value.reason == "mismatch"


@pytest.mark.parametrize("junk", ["*", "!", "\x00", "-", "_", " ", "\n"])
def test_characters_outside_base64_inside_a_genuine_signature_are_refused(junk: str) -> None:
    """A lenient decoder would drop them and accept the genuine digest underneath."""
    vector = POSITIVE["compact"]
    genuine = vector["signature"]
    with pytest.raises(InvalidSignature) as caught:
        verify(vector["body"].encode(), genuine[:20] + junk + genuine[20:], vector["secret"])
    assert caught.value.reason == "not_base64"


def test_surrounding_white_space_in_the_header_is_ignored() -> None:
    vector = POSITIVE["compact"]
    header = f" {vector['signature']}\t"
    assert verify(vector["body"].encode(), header, vector["secret"]) is SignatureForm.JSON


@pytest.mark.parametrize("name", ["compact", "utf8_raw"])
def test_a_secret_given_as_bytes_is_the_same_secret(name: str) -> None:
    vector = POSITIVE[name]
    body = vector["body"].encode()
    secret = vector["secret"].encode()
    assert sign(body, secret) == vector["signature"]
    assert verify(body, vector["signature"], secret) is SignatureForm.JSON


def test_a_given_json_form_is_the_one_checked() -> None:
    # The caller computed the JSON-aware form already; it is not computed again.
    signed = b'{"a":1}'
    header = sign(signed, "k")
    assert verify(b"unrelated", header, "k", json_form=signed) is SignatureForm.JSON


class _CompareSpy:
    """Stands in for `hmac.compare_digest`, recording each comparison."""

    def __init__(self, answer: bool | None = None) -> None:
        self.calls: list[tuple[bytes, bytes]] = []
        self.answer = answer

    def __call__(self, claimed: bytes, expected: bytes) -> bool:
        self.calls.append((claimed, expected))
        if self.answer is not None:
            return self.answer
        return hmac.compare_digest(claimed, expected)


def _spy_on_compare_digest(monkeypatch: pytest.MonkeyPatch, spy: _CompareSpy) -> None:
    # Only the module's view of `hmac` is replaced; HMAC itself stays real.
    fake_hmac = SimpleNamespace(new=hmac.new, digest=hmac.digest, compare_digest=spy)
    monkeypatch.setattr(signature_module, "hmac", fake_hmac)


def _expected_digest(secret: str, canonical: bytes) -> bytes:
    return hmac.new(secret.encode(), canonical, hashlib.sha256).digest()


def test_digests_are_compared_with_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Constant time: the claimed and the expected digest go to `hmac.compare_digest`."""
    vector = POSITIVE["escaped_quote_in_string"]
    body, secret = vector["body"].encode(), vector["secret"]
    json_digest = _expected_digest(secret, vector["json_canonical"].encode())
    reference_digest = _expected_digest(secret, vector["php_regex_canonical"].encode())

    spy = _CompareSpy()
    _spy_on_compare_digest(monkeypatch, spy)
    assert verify(body, vector["signature"], secret) is SignatureForm.JSON
    assert spy.calls == [(json_digest, json_digest)]

    spy.calls.clear()
    assert verify(body, vector["php_regex_signature"], secret) is SignatureForm.REFERENCE
    assert spy.calls == [(reference_digest, json_digest), (reference_digest, reference_digest)]

    spy.calls.clear()
    forged = base64.b64encode(bytes(32)).decode()
    with pytest.raises(InvalidSignature):
        verify(body, forged, secret)
    assert spy.calls == [(bytes(32), json_digest), (bytes(32), reference_digest)]


@pytest.mark.parametrize("name", ["compact", "escaped_quote_in_string"])
def test_the_comparisons_answer_alone_decides(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """No other comparison sits beside `compare_digest`: what it answers is the verdict."""
    vector = POSITIVE[name]
    body = vector["body"].encode()
    _spy_on_compare_digest(monkeypatch, _CompareSpy(answer=False))
    with pytest.raises(InvalidSignature):
        verify(body, vector["signature"], vector["secret"])
    _spy_on_compare_digest(monkeypatch, _CompareSpy(answer=True))
    forged = base64.b64encode(bytes(32)).decode()
    assert verify(body, forged, vector["secret"]) is SignatureForm.JSON


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


@pytest.mark.parametrize(
    ("body", "canonical"),
    [
        # Three quotes: the spaces before the first are followed by an odd
        # number and kept, the one inside "a b" by two and dropped, the ones
        # around c and d by one and kept, the last by none and dropped.
        (b'x y "a b" c d "e f', b'x y "ab" c d "ef'),
        (b'{"a": "b c", "d": "e f', b'{"a": "bc", "d": "ef'),
        # Right after the first of three quotes, two are left: dropped.
        (b'" a b" "c', b'"ab" "c'),
        (b'{ "a" :\t"b c" }', b'{"a":"b c"}'),
        (b"{ 1 }", b"{1}"),
    ],
)
def test_reference_canonical_known_answers(body: bytes, canonical: bytes) -> None:
    assert reference_canonical(body) == canonical == _quadratic_reference(body)


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


def test_verifying_a_signature_keeps_the_gil() -> None:
    """No call lets another thread in: on the daemon's busy event loop, taking the GIL back
    after each callback's HMAC cost more than the HMAC itself (docs/benchmarks.md)."""
    vector = POSITIVE["escaped_quote_in_string"]
    body, secret = vector["body"].encode(), vector["secret"]
    spins = [0]
    stop = threading.Event()

    def spin() -> None:  # runs only while the main thread lets go of the GIL
        while not stop.is_set():
            spins[0] += 1

    interval = sys.getswitchinterval()
    # Long enough that the interpreter never forces a switch during the loop below.
    sys.setswitchinterval(1.0)
    spinner = threading.Thread(target=spin)
    try:
        spinner.start()
        time.sleep(0.01)  # lets the spinner start
        before = spins[0]
        for _ in range(200):
            verify(body, vector["signature"], secret)
            verify(body, vector["php_regex_signature"], secret)
            if spins[0] != before:
                break  # each release costs a second: one is enough to fail
        ran = spins[0] - before
    finally:
        stop.set()
        time.sleep(0)
        spinner.join()
        sys.setswitchinterval(interval)
    assert ran == 0


def _json_canonical_by_hand(body: bytes) -> bytes:
    """JSON white space outside strings dropped, one byte at a time (for comparison only)."""
    kept = bytearray()
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == ord("\\"):
                escaped = True
            elif byte == ord('"'):
                in_string = False
        elif byte == ord('"'):
            in_string = True
        elif byte in b" \t\n\r":
            continue
        kept.append(byte)
    return bytes(kept)


@pytest.mark.parametrize(
    ("body", "canonical"),
    [
        (b'{ "a" : "b c" }', b'{"a":"b c"}'),
        (b'{ "a" : "b \\" c" , "d" : 1 }', b'{"a":"b \\" c","d":1}'),
        (b'\t"a b"\r\n"c d" e', b'"a b""c d"e'),
        (b'{"a": "b c', b'{"a":"b c'),  # an unterminated string keeps its white space
        (b'{"a": "b \\', b'{"a":"b \\'),
        (b"\x0b \x0c", b"\x0b\x0c"),  # not JSON white space
        (b"", b""),
    ],
)
def test_json_canonical_known_answers(body: bytes, canonical: bytes) -> None:
    assert json_canonical(body) == canonical == _json_canonical_by_hand(body)


@given(st.binary(max_size=64) | st.text(alphabet=' \t\n\r\x0b"\\ab{}', max_size=64).map(str.encode))
def test_json_canonical_follows_the_rule_byte_for_byte(body: bytes) -> None:
    assert json_canonical(body) == _json_canonical_by_hand(body)
