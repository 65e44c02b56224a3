"""Signature check time on adversarial bodies: the bridge against the reference rule's regex.

    python bench/signature.py

The reference plugin canonicalises with a look-ahead regex that rescans the
rest of the body at every white-space byte, so its cost grows with the square
of the body size. The bridge's canonical forms are linear. Prints the median
of several runs per size.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable

from bridge.signature import sign, verify

# The reference plugin's rule, as it is written there: drop white space
# followed by an even number of quotes, checked by a look-ahead.
REFERENCE_REGEX = re.compile(rb'[ \t\n\x0b\x0c\r](?=(?:[^"]*"[^"]*")*[^"]*$)')


def median_ms(action: Callable[..., object], *arguments: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action(*arguments)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    print(f"{'body':>28}  {'bridge verify':>14}  {'reference regex':>16}")
    for kib in (1, 4, 16, 60):
        body = b' "' * (kib * 512)
        header = sign(body, "secret")
        ours = median_ms(verify, body, header, "secret", repeat=21)
        repeat = 3 if kib >= 16 else 7
        theirs = median_ms(REFERENCE_REGEX.sub, b"", body, repeat=repeat)
        print(f"{kib:>3} KiB of spaces and quotes  {ours:>11.2f} ms  {theirs:>13.1f} ms")


if __name__ == "__main__":
    main()
