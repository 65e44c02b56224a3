"""Text that came from requests, made safe to show people: console logs, admin tables.

A value with a newline could forge a whole log line or table row, and an
escape sequence could recolour a terminal, move its cursor or set its title.
Control characters are shown escaped instead, the way Python writes them.
"""

from __future__ import annotations

import re

__all__ = ["escape_controls"]

# C0 and DEL, C1 (with NEL, U+0085), the Unicode line and paragraph
# separators (new lines for some terminals and viewers), the bidirectional
# overrides and isolates (which reorder what is shown), and lone surrogates
# (which a UTF-8 stream refuses to write).
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_CONTROLS_BUT_LAYOUT = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    character = match.group()
    named = _NAMED.get(character)
    if named is not None:
        return named
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str, *, multiline: bool = False) -> str:
    """`text` with control characters escaped (`\\n`, `\\x1b`, `\\u2028`); others unchanged.

    `multiline` keeps newlines and tabs, for text that is several lines by
    nature (a traceback, a pretty-printed body); a carriage return is still
    escaped, as it would let a line overwrite the one before on a terminal.
    """
    pattern = _CONTROLS_BUT_LAYOUT if multiline else _CONTROLS
    return pattern.sub(_escaped, text)
