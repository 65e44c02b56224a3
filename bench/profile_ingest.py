"""Where a callback's time goes in `serve` under wrk: microseconds per callback, by part.

    python bench/profile_ingest.py [--seconds 7] [--rate 250]

Needs wrk (`apt-get install -y wrk`) and py-spy (`pip install py-spy`).
Starts the bridge on a new SQLite database (deliveries running to a shop
taking 100 ms, as in bench/ingest.py), loads it with wrk exactly as
`bench/ingest.py --generator wrk` does (unique signed callbacks, one wrk
thread, 50 keep-alive connections), and samples every thread of the
process with py-spy meanwhile, idle time included. Each sample of the
event-loop thread is put in one part of the work by the most specific
frame on its stack (`PARTS`, first match wins), then turned into
microseconds per accepted callback: the share of samples times the
thread's wall time per callback. The writer thread (aiosqlite's) is split
into running a statement and waiting for one.

py-spy's sampling itself slows the process a little: compare parts with
each other and runs with runs, not the total with bench/ingest.py's figures.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from footprint import start_bridge
from ingest import bridge_config, free_port, start_report
from wrk_ingest import IDLE_SECONDS, run_wrk, write_callbacks

# (part, what a frame of it contains): the first part any frame of a sample
# matches. Ordered from the most specific (a library the handler calls) to
# the least (the event loop itself).
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("waiting for I/O (epoll)", ("EpollSelector.select",)),
    ("signature: canonical JSON, HMAC", ("bridge/signature.py",)),
    ("payload: parse and validate", ("bridge/payload.py", "pydantic")),
    ("logging (structlog)", ("structlog", "bridge/log_setup.py", "logging/")),
    ("metrics (prometheus_client)", ("prometheus_client", "bridge/metrics.py")),
    ("answer's JSON", ("json_response", "json/encoder.py")),
    ("storage, loop side (writer queue, aiosqlite)", ("bridge/storage", "aiosqlite")),
    ("delivery worker", ("bridge/delivery", "bridge/woocommerce", "bridge/cryptum")),
    ("handler's own code", ("bridge/callbacks.py", "bridge/middlewares.py")),
    ("HTTP: parse requests, write answers (aiohttp)", ("aiohttp/",)),
    ("event loop: scheduling, sockets (asyncio)", ("asyncio/",)),
)
OTHER = "other"


def part_of(frames: list[str]) -> str:
    for part, markers in PARTS:
        if any(marker in frame for frame in frames for marker in markers):
            return part
    return OTHER


def read_samples(raw: Path) -> dict[str, collections.Counter[str]]:
    """Samples per thread name, each counted under its part."""
    threads: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        thread, *frames = stack.split(";")
        name = thread.split(": ", 1)[-1]
        if "_connection_worker_thread" in name:
            running = any("_execute" in frame for frame in frames)
            part = "running a statement (sqlite3)" if running else "waiting for a statement"
        else:
            part = part_of(frames)
        threads[name][part] += int(count)
    return threads


def profile(directory: Path, arguments: argparse.Namespace) -> None:
    callbacks = directory / "callbacks.txt"
    write_callbacks(callbacks, arguments.requests)
    shop_port = free_port()
    here = Path(__file__).resolve().parent
    shop = subprocess.Popen(
        [sys.executable, str(here / "shop_server.py"), str(shop_port), "1000"],
        stdout=subprocess.DEVNULL,
    )
    port = free_port()
    config = bridge_config(
        directory, port, 256, f"http://127.0.0.1:{shop_port}", directory / "bridge.sqlite3"
    )
    process, _ = start_bridge(config, directory / "notify.sock")
    try:
        time.sleep(IDLE_SECONDS)
        raw = directory / "samples.txt"
        # Sampling starts a moment after the load and ends before it does,
        # so every sample falls within the steady state.
        spy = subprocess.Popen(
            ["py-spy", "record", "--pid", str(process.pid), "--duration",
             str(arguments.seconds), "--rate", str(arguments.rate), "--threads", "--idle",
             *([] if arguments.blocking else ["--nonblocking"]),
             "--format", "raw", "--output", str(raw)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        load = argparse.Namespace(concurrency=50, duration=arguments.seconds + 1)
        result = run_wrk(port, callbacks, load)
        spy.wait(timeout=60)
    finally:
        process.terminate()
        process.wait(timeout=30)
        shop.terminate()
        shop.wait(timeout=30)
    if arguments.keep_samples is not None:
        shutil.copyfile(raw, arguments.keep_samples)
    report(read_samples(raw), result["per_second"], result)


def report(
    threads: dict[str, collections.Counter[str]], per_second: float, result: dict[str, float]
) -> None:
    wall_us = 1e6 / per_second  # each thread's wall time per accepted callback
    print(f"load: {per_second:.0f} callbacks/s accepted, p99 {result['p99_ms']:.1f} ms")
    print(f"each thread's wall time per callback: {wall_us:.0f} µs\n")
    for name, parts in sorted(threads.items()):
        total = sum(parts.values())
        print(f"{name} ({total} samples)")
        for part, count in parts.most_common():
            share = count / total
            print(f"  {share * wall_us:6.0f} µs  {share:6.1%}  {part}")
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=7, help="how long to sample")
    parser.add_argument("--rate", type=int, default=250, help="samples a second")
    parser.add_argument("--requests", type=int, default=200000, help="unique callbacks")
    parser.add_argument(
        "--blocking",
        action="store_true",
        help="pause the process for each sample: exact stacks, but a slower process",
    )
    parser.add_argument(
        "--keep-samples", type=Path, help="copy py-spy's raw samples here, for a closer look"
    )
    arguments = parser.parse_args()
    start_report("profile_ingest.py", ("wrk", "py-spy"))
    with tempfile.TemporaryDirectory(prefix="bridge-profile-") as directory:
        profile(Path(directory), arguments)


if __name__ == "__main__":
    main()
