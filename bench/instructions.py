"""Instructions per callback in `serve`, counted by callgrind: a figure noise cannot move.

    python bench/instructions.py [--requests 2000] [--concurrency 50]

Needs valgrind (`apt-get install -y valgrind`). Throughput on a shared
machine moves by a fifth between runs of the same code, which hides a
change worth a few percent; the instructions a callback costs do not move
with the machine's load. This starts `serve` under callgrind with counting
off (so the start is not counted, and is quicker), sends a few hundred
callbacks to warm it up, then counts while `--requests` unique signed
callbacks arrive over `--concurrency` keep-alive connections (the Python
client of bench/ingest.py, in its own process), and prints instructions
per accepted callback: the event loop's thread, SQLite's threads, and the
whole process. Deliveries run meanwhile, as in bench/ingest.py, to a shop
made as much slower as callgrind makes the bridge.

Compare two versions of the code by running this on each: the figures
repeat within about 1 % (batches form a little differently each run).
`--server floor` and `--server bare` count bench/floor_server.py and
bench/bare_server.py (on uvloop) the same way, for the distance to them.
Instructions are not time, so confirm a change with bench/ingest.py too:
a system call or a wait for the GIL costs little in instructions and much
in time.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ingest import bridge_config, free_port, run_load, start_report, wait_listening, wait_ready

# Callgrind runs the process some forty times slower than it runs alone.
START_TIMEOUT_SECONDS = 300.0
WARM_UP_CALLBACKS = 300
# bench/ingest.py's shop takes 100 ms, and the bridge runs some forty times
# slower under callgrind: a shop forty times slower keeps deliveries to the
# same share of the work, a few in a thousand callbacks.
SHOP_LATENCY = 4.0


def callgrind_control(pid: int, *options: str) -> None:
    subprocess.run(["callgrind_control", *options, str(pid)], check=True, capture_output=True)


def instructions_by_thread(directory: Path, pid: int) -> dict[int, int]:
    """Instructions counted in each thread of `pid`, from callgrind's files (thread 1 first)."""
    counts = {}
    for path in directory.glob(f"callgrind.out.{pid}*"):
        thread = re.search(r"-(\d+)$", path.name)
        # "totals" is what was counted since the last zeroing; "summary" is not kept up.
        total = re.search(r"^totals: (\d+)", path.read_text(), re.MULTILINE)
        if thread and total:
            counts[int(thread.group(1))] = counts.get(int(thread.group(1)), 0) + int(total.group(1))
    return dict(sorted(counts.items()))


def count(directory: Path, arguments: argparse.Namespace) -> None:
    shop_port = free_port()
    here = Path(__file__).resolve().parent
    shop = subprocess.Popen(
        [sys.executable, str(here / "shop_server.py"), str(shop_port), "1000", str(SHOP_LATENCY)],
        stdout=subprocess.DEVNULL,
    )
    wait_listening(shop_port)
    port = free_port()
    config = bridge_config(directory, port, 256, f"http://127.0.0.1:{shop_port}")
    server = {
        "bridge": ["-m", "bridge", "serve", "--config", str(config)],
        "floor": [str(here / "floor_server.py"), str(port), str(directory / "floor.sqlite3")],
        "bare": [str(here / "bare_server.py"), str(port), "uvloop"],
    }[arguments.server]
    process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes",
         f"--callgrind-out-file={directory}/callgrind.out.%p", sys.executable, *server],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/callbacks/cryptum"
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", timeout=START_TIMEOUT_SECONDS)
        # Not counted (counting is off): the first requests of a fresh process
        # import and cache what later ones find ready.
        warm_up = run_load(url, WARM_UP_CALLBACKS, arguments.concurrency)
        started = time.perf_counter()
        result = run_load(
            url,
            arguments.requests,
            arguments.concurrency,
            on_start=lambda: callgrind_control(process.pid, "--instr=on"),
            on_end=lambda: callgrind_control(process.pid, "--instr=off"),
        )
        elapsed = time.perf_counter() - started
        if warm_up["failures"] or result["failures"]:
            failures = warm_up["failures"] + result["failures"]
            raise SystemExit(f"{failures} callbacks were not accepted")
    finally:
        process.terminate()
        process.wait(timeout=120)
        shop.terminate()
        shop.wait(timeout=30)
    by_thread = instructions_by_thread(directory, process.pid)
    callbacks = arguments.requests
    print(f"{callbacks} callbacks counted, in {elapsed:.0f} s under callgrind")
    print("instructions per callback:")
    for thread, instructions in by_thread.items():
        name = "event loop" if thread == 1 else f"thread {thread}"
        print(f"  {instructions / callbacks:>10,.0f}  {name}")
    print(f"  {sum(by_thread.values()) / callbacks:>10,.0f}  the whole process")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="callbacks counted")
    parser.add_argument("--concurrency", type=int, default=50, help="keep-alive connections")
    parser.add_argument(
        "--server",
        choices=("bridge", "floor", "bare"),
        default="bridge",
        help="what to count: serve, bench/floor_server.py, or bench/bare_server.py on uvloop",
    )
    arguments = parser.parse_args()
    start_report("instructions.py", ("valgrind", "callgrind_control"))
    with tempfile.TemporaryDirectory(prefix="bridge-instructions-") as directory:
        count(Path(directory), arguments)


if __name__ == "__main__":
    main()
