"""`bench/ingest.py --generator wrk`: the bare handler and the bridge under wrk, in one run.

wrk (`apt-get install -y wrk`) is a load generator written in C: on a 2-core
machine it leaves more of the CPU to the server than the Python generator.
The callbacks are signed beforehand into a file, one a line, and
bench/wrk_callbacks.lua sends each of them once over keep-alive connections
from one wrk thread. It stops sending shortly before wrk's end so every
callback sent is answered, which lets each bridge run end with a check: the
database holds exactly as many events as the run got 2xx answers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from footprint import rss_kib, start_bridge
from ingest import bridge_config, free_port, make_requests, start

SCRIPT = Path(__file__).resolve().with_name("wrk_callbacks.lua")
RESULT_PREFIX = "WRK_RESULT "
# The script stops sending this long before wrk stops, for the answers in flight to come in.
DRAIN_SECONDS = 0.5
# The bridge's idle RSS is read this long after it is ready, as bench/footprint.py does.
IDLE_SECONDS = 2.0


def wrk_version() -> str:
    """What `wrk -v` says, e.g. "wrk debian/4.1.0-3+b2 [epoll]"; exits if wrk is missing."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    # wrk -v prints its version, then its usage, and exits 1.
    output = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    return output.splitlines()[0].split(" Copyright")[0]


def wrk_command(url: str, callbacks: Path, connections: int, duration: int) -> list[str]:
    return [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-s",
        str(SCRIPT),
        url,
        "--",
        str(callbacks),
        str(connections),
        str(duration - DRAIN_SECONDS),
    ]


def write_callbacks(path: Path, count: int) -> None:
    """`count` unique signed callbacks, one a line: signature, tab, body."""
    with path.open("wb") as file:
        for body, signature in make_requests(count):
            # json.dumps escapes control characters: a body holds no tab or newline.
            file.write(signature.encode() + b"\t" + body + b"\n")


def run_wrk(port: int, callbacks: Path, arguments: argparse.Namespace) -> dict[str, Any]:
    """One wrk run against `port`: what the script reports, and accepted callbacks per second."""
    url = f"http://127.0.0.1:{port}/callbacks/cryptum"
    command = wrk_command(url, callbacks, arguments.concurrency, arguments.duration)
    finished = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in finished.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if finished.returncode != 0 or len(lines) != 1:
        raise SystemExit(
            f"wrk failed (exit {finished.returncode}):\n{finished.stdout}{finished.stderr}"
        )
    result: dict[str, Any] = json.loads(lines[0].removeprefix(RESULT_PREFIX))
    result["ok"] = result["answers"] - result["non_2xx"]
    result["in_flight"] = result["sent"] - result["answers"]
    result["socket_error_count"] = sum(result["socket_errors"].values())
    # The window runs from the first callback sent to the last answer in. If
    # some answers never came (in_flight > 0), wrk's own duration is all there is.
    seconds = result["window_s"] or result["wrk_duration_s"]
    result["seconds"] = seconds
    result["per_second"] = result["ok"] / seconds
    return result


def count_events(database: Path) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        return int(connection.execute("SELECT count(*) FROM events").fetchone()[0])


def measure_bare(here: Path, callbacks: Path, arguments: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    process = start([sys.executable, str(here / "bare_server.py"), str(port)], port)
    try:
        return run_wrk(port, callbacks, arguments)
    finally:
        process.terminate()
        process.wait(timeout=30)


def measure_bridge(
    directory: Path, shop_url: str, callbacks: Path, arguments: argparse.Namespace
) -> dict[str, Any]:
    """One run against `serve` on a new database: wrk's figures, start, RSS, events stored."""
    port = free_port()
    database = directory / f"wrk-bridge-{port}.sqlite3"
    config = bridge_config(directory, port, 256, shop_url, database)
    process, ready_seconds = start_bridge(config, directory / "notify.sock")
    try:
        time.sleep(IDLE_SECONDS)
        idle_kib = rss_kib(process.pid)
        result = run_wrk(port, callbacks, arguments)
        end_kib = rss_kib(process.pid)
        peak_kib = rss_kib(process.pid, "VmHWM")
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {
        **result,
        "ready_s": ready_seconds,
        "idle_mib": idle_kib / 1024,
        "end_mib": end_kib / 1024,
        "peak_mib": peak_kib / 1024,
        "stored": count_events(database),
    }


def describe(name: str, run: dict[str, Any]) -> str:
    line = (
        f"{name:6} {run['per_second']:6.0f}/s  p50 {run['p50_ms']:5.1f} ms"
        f"  p99 {run['p99_ms']:5.1f} ms  {run['ok']} 2xx in {run['seconds']:.2f} s"
        f"  non-2xx {run['non_2xx']}  socket errors {run['socket_error_count']}"
    )
    if "stored" in run:
        line += (
            f"\n         ready {run['ready_s']:.2f} s  RSS idle {run['idle_mib']:.1f} MiB,"
            f" end {run['end_mib']:.1f}, peak {run['peak_mib']:.1f}  events stored {run['stored']}"
        )
    return line


def warnings(run: dict[str, Any], arguments: argparse.Namespace) -> list[str]:
    found = []
    if run["exhausted"]:
        found.append(
            f"WARNING: the {run['available']} callbacks ran out after {run['seconds']:.2f} s"
            f" of {arguments.duration - DRAIN_SECONDS} s; the figures cover only that time."
            " Raise --requests."
        )
    if run["in_flight"]:
        found.append(
            f"WARNING: {run['in_flight']} callbacks were still unanswered when wrk stopped"
        )
    return found


def check_stored(run: dict[str, Any]) -> None:
    """Every 2xx answer is an event in the database, and no other event is."""
    if run["stored"] == run["ok"]:
        return
    raise SystemExit(
        f"FAILED: the bridge answered {run['ok']} callbacks with 2xx but its database holds"
        f" {run['stored']} events ({run['in_flight']} unanswered when wrk stopped,"
        f" {run['socket_error_count']} socket errors)"
    )


def print_header(arguments: argparse.Namespace) -> None:
    print(f"command: {shlex.join(sys.orig_argv)}")
    load = ", ".join(f"{average:.2f}" for average in os.getloadavg())
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cpus, Python"
        f" {platform.python_version()}, load average {load} at start"
    )
    command = wrk_command("URL", Path("CALLBACKS"), arguments.concurrency, arguments.duration)
    command[command.index(str(SCRIPT))] = "bench/wrk_callbacks.lua"
    print(f"generator: {wrk_version()}: {shlex.join(command)}")
    print(
        f"load: {arguments.requests} unique signed callbacks, each sent once, keep-alive;"
        f" sending stops {DRAIN_SECONDS} s before wrk's end to collect the answers in flight",
        flush=True,
    )


def compare_with_bare_wrk(
    here: Path, directory: Path, shop_url: str, arguments: argparse.Namespace
) -> None:
    """Per round: the bare handler and the bridge (group commit), alternating which goes first."""
    callbacks = directory / "callbacks.tsv"
    write_callbacks(callbacks, arguments.requests)
    results: dict[str, list[dict[str, Any]]] = {"bare": [], "bridge": []}
    notes = []
    for round_number in range(1, arguments.rounds + 1):
        names = ["bare", "bridge"] if round_number % 2 else ["bridge", "bare"]
        for name in names:
            if name == "bare":
                run = measure_bare(here, callbacks, arguments)
            else:
                run = measure_bridge(directory, shop_url, callbacks, arguments)
            results[name].append(run)
            print(f"round {round_number} {describe(name, run)}", flush=True)
            for warning in warnings(run, arguments):
                print(warning, flush=True)
                notes.append(f"round {round_number} {name}: {warning}")
            if name == "bridge":
                check_stored(run)

    def median(name: str, key: str) -> float:
        return statistics.median(run[key] for run in results[name])

    print(f"\nmedians of {arguments.rounds} rounds")
    for name in results:
        print(
            f"  {name:6} {median(name, 'per_second'):6.0f}/s  p50 {median(name, 'p50_ms'):5.1f} ms"
            f"  p99 {median(name, 'p99_ms'):5.1f} ms"
        )
    print(
        f"  bridge: start to ready {median('bridge', 'ready_s'):.2f} s,"
        f" RSS idle {median('bridge', 'idle_mib'):.1f} MiB, end {median('bridge', 'end_mib'):.1f},"
        f" peak {median('bridge', 'peak_mib'):.1f}"
    )
    # Ratios within a round are the fair ones: both runs met the same machine.
    ratios = [
        bridge["per_second"] / bare["per_second"]
        for bare, bridge in zip(results["bare"], results["bridge"], strict=True)
    ]
    print(
        f"bridge / bare aiohttp: {statistics.median(ratios):.2f}x median of rounds"
        f" ({', '.join(f'{ratio:.2f}' for ratio in ratios)});"
        f" of medians {median('bridge', 'per_second') / median('bare', 'per_second'):.2f}x"
    )
    print("every bridge run: events stored = 2xx answers")
    for note in notes:
        print(note)
