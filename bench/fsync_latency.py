"""How long this machine's disk takes to make a commit durable, and how often it stalls.

    python bench/fsync_latency.py [--seconds 60] [--rate 250] [--bytes 16384] [--directory DIR]

Writes `--bytes` and calls fdatasync, as SQLite does for each commit in WAL
mode with synchronous=FULL, `--rate` times a second (about the bridge's
commits a second under the wrk benchmark's load; 0: back to back), for
`--seconds`, in the directory the database would live in (a temporary one
by default). The writes go round a 4 MiB file, as a WAL is written again
from its start once checkpointed, so the file does not grow. Prints the
median, p99 and longest wait, and every stall of 50 ms or more with when
it happened: no callback can be answered faster than the fsync covering
it, so the disk's stalls show up in any durable server's p99.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

STALL_SECONDS = 0.050
RING_BYTES = 4 * 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=250.0, help="commits a second; 0: no pause")
    parser.add_argument("--bytes", type=int, default=16384)
    parser.add_argument("--directory", default=None)
    arguments = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cpus")
    block = os.urandom(arguments.bytes)
    interval = 1 / arguments.rate if arguments.rate > 0 else 0.0
    waits: list[float] = []
    stalls: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(dir=arguments.directory) as directory:
        descriptor = os.open(os.path.join(directory, "wal"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            started = next_at = time.monotonic()
            offset = 0
            while (now := time.monotonic()) - started < arguments.seconds:
                os.pwrite(descriptor, block, offset)
                os.fdatasync(descriptor)
                wait = time.monotonic() - now
                waits.append(wait)
                if wait >= STALL_SECONDS:
                    stalls.append((now - started, wait))
                offset = (offset + len(block)) % RING_BYTES
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            os.close(descriptor)
    ordered = sorted(waits)
    print(
        f"{len(waits)} commits of {arguments.bytes} bytes in {arguments.seconds:.0f} s:"
        f" median {statistics.median(ordered) * 1000:.2f} ms,"
        f" p99 {ordered[int(len(ordered) * 0.99)] * 1000:.2f} ms,"
        f" longest {ordered[-1] * 1000:.1f} ms"
    )
    print(f"stalls of {STALL_SECONDS * 1000:.0f} ms or more: {len(stalls)}")
    for at, wait in stalls:
        print(f"  at {at:6.1f} s: {wait * 1000:.1f} ms")


if __name__ == "__main__":
    main()
