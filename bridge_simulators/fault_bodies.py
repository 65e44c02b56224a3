"""Failed answers that the application never wrote: a proxy's error page, a body cut short.

Both simulators' `fail_next(body=...)` use these. Neither Cryptum's
documentation nor the WooCommerce recordings show such answers; they are what
a reverse proxy sends when the application behind it fails, and what a
process leaves when it dies while writing. A client has to take them for
failures without mistaking them for the application's JSON errors.
"""

from __future__ import annotations

from http import HTTPStatus

__all__ = ["PROXY_PAGE_CONTENT_TYPE", "cut_short", "proxy_error_page"]

PROXY_PAGE_CONTENT_TYPE = "text/html"

# nginx's titles where they differ from the standard reason phrases.
_NGINX_REASONS = {
    408: "Request Time-out",
    413: "Request Entity Too Large",
    414: "Request-URI Too Large",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


def proxy_error_page(status: int) -> bytes:
    """nginx's built-in error page for `status`, as it answers when the upstream fails."""
    try:
        reason = _NGINX_REASONS.get(status) or HTTPStatus(status).phrase
    except ValueError:
        raise ValueError(f"no error page for HTTP status {status}") from None
    title = f"{status} {reason}"
    lines = (
        "<html>",
        f"<head><title>{title}</title></head>",
        "<body>",
        f"<center><h1>{title}</h1></center>",
        "<hr><center>nginx</center>",
        "</body>",
        "</html>",
        "",
    )
    return "\r\n".join(lines).encode()


def cut_short(body: bytes) -> bytes:
    """The first half of `body`: what a process that died halfway through writing it sent."""
    return body[: len(body) // 2]
