"""Path segments: only unreserved characters stay, dot segments cannot survive normalisation."""

from __future__ import annotations

import string
from urllib.parse import unquote, urljoin

import pytest
from yarl import URL

from bridge.url_path import path_segment


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("103", "103"),
        ("../customers/1", "..%2Fcustomers%2F1"),
        ("1/notes", "1%2Fnotes"),
        ("1?x=2", "1%3Fx%3D2"),
        ("1#f", "1%23f"),
        ("%2E%2E", "%252E%252E"),
        ("a b+c", "a%20b%2Bc"),
        ("1;x", "1%3Bx"),
        ("a\\b", "a%5Cb"),
        ("a\x00\n\r", "a%00%0A%0D"),
        ("café", "caf%C3%A9"),
        ("\u2028", "%E2%80%A8"),
        ("\ud800", "%ED%A0%80"),
        (".", "%2E"),
        ("..", "%2E%2E"),
        ("...", "%2E%2E%2E"),
        (".a.", ".a."),
        ("-._~", "-._~"),
    ],
)
def test_encodes_everything_but_unreserved_characters(value: str, encoded: str) -> None:
    assert path_segment(value) == encoded


def test_unreserved_characters_stay_and_every_other_ascii_character_is_encoded() -> None:
    unreserved = string.ascii_letters + string.digits + "-._~"
    assert path_segment(unreserved) == unreserved
    for code in range(128):
        character = chr(code)
        if character not in unreserved:
            assert path_segment("x" + character) == f"x%{code:02X}"


@pytest.mark.parametrize("value", ["..", ".", "../..", "../customers/1", "a/../../b", "%2e%2e"])
def test_a_segment_survives_dot_segment_removal(value: str) -> None:
    base = "http://shop.example/wp-json/wc/v3/orders/"
    # urljoin applies RFC 3986 dot-segment removal to the reference.
    joined = urljoin(base, path_segment(value))
    assert joined == base + path_segment(value)
    assert unquote(joined.removeprefix(base)) == value


@pytest.mark.parametrize("value", ["..", ".", "../customers/1", "1?x=2", "1#f", "café"])
def test_a_segment_is_kept_exactly_in_an_encoded_yarl_url(value: str) -> None:
    url = URL("http://shop.example/wp-json/wc/v3/orders/" + path_segment(value), encoded=True)
    assert url.raw_path == "/wp-json/wc/v3/orders/" + path_segment(value)
    assert (url.raw_query_string, url.raw_fragment) == ("", "")


def test_an_empty_value_is_refused() -> None:
    with pytest.raises(ValueError) as refused:
        path_segment("")
    assert str(refused.value) == "an empty value cannot be a URL path segment"


@pytest.mark.parametrize("value", ["X", "X.X", "XX.XX", ".X", "X."])
def test_only_dots_count_as_a_dot_segment(value: str) -> None:
    # Letters beside the dots make an ordinary segment, sent as it is.
    assert path_segment(value) == value
