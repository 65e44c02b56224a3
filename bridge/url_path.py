"""Values placed in a URL path, encoded so that each stays exactly one segment.

An order id that reaches a URL unencoded could name another endpoint
(`../customers/1`, `1/notes`, `1?force=true`). Everything outside RFC 3986's
unreserved characters is percent-encoded. The dot-only segments are written
as `%2E`, because the dot-segment removal of RFC 3986 (section 5.2.4), which
clients, proxies and servers apply, drops a literal `.` or `..` with or
without the segment before it.

The result must then be sent as it is: yarl, given a `str` URL, decodes
`%2E` back to `.` and removes the dot segments itself, so the URL is built
with `URL(..., encoded=True)`.
"""

from __future__ import annotations

from urllib.parse import quote

__all__ = ["path_segment"]


def path_segment(value: str) -> str:
    """`value` percent-encoded as one URL path segment (UTF-8; only `A-Za-z0-9-._~` kept).

    Raises `ValueError` for an empty value: an empty segment names the parent
    collection (`/orders/` is the order list), not an item in it.
    """
    if not value:
        raise ValueError("an empty value cannot be a URL path segment")
    if value.strip(".") == "":
        return "%2E" * len(value)
    # safe="" leaves only the unreserved characters. A lone surrogate (not
    # valid text, but possible in a str) is still encoded rather than raising.
    return quote(value, safe="", errors="surrogatepass")
