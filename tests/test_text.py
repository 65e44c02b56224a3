"""Escaping control characters for people's eyes: each class of character, and what stays."""

from __future__ import annotations

import pytest

from bridge.text import escape_controls


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("a\nb", "a\\nb"),
        ("a\rb", "a\\rb"),
        ("a\tb", "a\\tb"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("\x00\x07\x08\x0b\x0c\x1f", "\\x00\\x07\\x08\\x0b\\x0c\\x1f"),
        ("\x7f", "\\x7f"),
        ("\x85\x9b", "\\x85\\x9b"),  # C1: next line, control sequence introducer
        ("a\u2028b\u2029c", "a\\u2028b\\u2029c"),
        ("\u202e\u2066\u2069", "\\u202e\\u2066\\u2069"),
        ("\ud800", "\\ud800"),
    ],
)
def test_control_characters_are_escaped(text: str, shown: str) -> None:
    assert escape_controls(text) == shown
    assert escape_controls(text).isprintable()


@pytest.mark.parametrize(
    "text", ["", "order 103", "São Paulo — obrigado", "a\\nb", "日本語", "x" * 300, "\u00a0\u200b"]
)
def test_other_text_is_unchanged(text: str) -> None:
    assert escape_controls(text) == text


def test_every_c0_and_c1_control_is_escaped() -> None:
    for code in [*range(0x20), *range(0x7F, 0xA0)]:
        assert escape_controls(chr(code)).startswith("\\"), hex(code)


def test_multiline_keeps_newlines_and_tabs_only() -> None:
    text = "line one\n\tline two\r\x1b[2Kforged\u2028"
    assert escape_controls(text, multiline=True) == ("line one\n\tline two\\r\\x1b[2Kforged\\u2028")
