"""How Cryptum signs a callback, written from its documentation alone.

The `X-Webhook-Signature` header is `base64(HMAC-SHA256(webhook_secret,
canonical_body))`, and the reference plugin's canonical body deletes every
ASCII white-space byte (space, `\\t`, `\\n`, `\\v`, `\\f`, `\\r`) that is
followed by an even number of `"` characters up to the end of the body
(`spec/cryptum.md`, "Signature"). Cryptum signs with that rule, so the
simulator does too, even where it differs from JSON's idea of white space
(a string holding an escaped quote).

Nothing here comes from `bridge.signature`, the code that verifies these
headers: a simulator sharing it would share its mistakes. The rule is
transcribed as literally as it reads, counting the quotes after every byte,
which takes time quadratic in the body size. The simulator signs only its own
small callback bodies, so plain beats fast here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["WHITE_SPACE", "reference_canonical", "sign"]

# The bytes the rule names: space, \t, \n, \v, \f and \r.
WHITE_SPACE = frozenset(b" \t\n\v\f\r")


def reference_canonical(body: bytes) -> bytes:
    """The body without each white-space byte followed by an even number of quotes."""
    kept = bytearray()
    for index, byte in enumerate(body):
        quotes_after = body[index + 1 :].count(b'"')
        if byte in WHITE_SPACE and quotes_after % 2 == 0:
            continue
        kept.append(byte)
    return bytes(kept)


def sign(body: bytes, webhook_secret: str) -> str:
    """The `X-Webhook-Signature` value Cryptum sends with `body`."""
    digest = hmac.new(webhook_secret.encode(), reference_canonical(body), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")
