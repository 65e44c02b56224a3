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
from typing import Any, NamedTuple

from footprint import rss_kib, start_bridge
from ingest import (
    bridge_config,
    free_port,
    make_requests,
    prefilled_database,
    remove_database,
    round_copy,
    start,
)

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


class ThreadSample(NamedTuple):
    """What the scheduler has counted so far for one thread."""

    running_ns: int  # on a CPU
    waiting_ns: int  # runnable, but waiting in the run queue for a CPU
    system_ticks: int  # of the time on a CPU, in the kernel (system calls, wake-ups)
    voluntary: int  # switches away because it blocked (a poll, a lock, the GIL)
    involuntary: int  # switches away because the scheduler preempted it


def thread_samples(pid: int) -> dict[str, ThreadSample]:
    """Each thread of `pid` by "tid name", from /proc's schedstat and status."""
    samples = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        task = Path(f"/proc/{pid}/task/{tid}")
        try:
            running, waiting, _ = (task / "schedstat").read_text().split()
            stat = (task / "stat").read_text()
            status = dict(
                line.split(":\t", 1) for line in (task / "status").read_text().splitlines()
            )
        except (FileNotFoundError, ProcessLookupError):  # the thread ended meanwhile
            continue
        samples[f"{tid} {status['Name']}"] = ThreadSample(
            int(running),
            int(waiting),
            int(stat[stat.rindex(")") + 2 :].split()[12]),  # stime, after the name
            int(status["voluntary_ctxt_switches"]),
            int(status["nonvoluntary_ctxt_switches"]),
        )
    return samples


def machine_busy_ticks() -> tuple[int, int]:
    """Ticks of all CPUs so far from /proc/stat: (busy, all); idle and iowait are not busy."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def cpu_per_callback(
    before: dict[str, ThreadSample],
    after: dict[str, ThreadSample],
    answered: int,
    window_seconds: float,
) -> dict[str, float]:
    """Per answered callback: the event loop thread's CPU, run-queue wait and switches; the rest.

    Also the share of the answering window the loop thread spent on a CPU:
    below 1, the loop was not the only limit (it waited for the GIL, for a
    CPU, or for work such as a commit to finish).
    """
    zero = ThreadSample(0, 0, 0, 0, 0)
    used = {
        thread: ThreadSample(
            *(now - then for now, then in zip(sample, before.get(thread, zero), strict=True))
        )
        for thread, sample in after.items()
    }
    main = min(used, key=lambda thread: int(thread.split()[0]))  # the first thread: the loop's
    loop = used[main]
    per = 1 / max(answered, 1)
    others_ns = sum(sample.running_ns for sample in used.values()) - loop.running_ns
    return {
        "loop_us": loop.running_ns / 1000 * per,
        "loop_system_us": loop.system_ticks / os.sysconf("SC_CLK_TCK") * 1e6 * per,
        "loop_wait_us": loop.waiting_ns / 1000 * per,
        "loop_voluntary": loop.voluntary * per,
        "loop_involuntary": loop.involuntary * per,
        # The CPU time of the whole run over the window: wrk's start and drain add a little.
        "loop_busy": loop.running_ns / 1e9 / window_seconds,
        "other_threads_us": others_ns / 1000 * per,
    }


def run_wrk_measured(
    pid: int, port: int, callbacks: Path, arguments: argparse.Namespace
) -> dict[str, Any]:
    """`run_wrk`, with what the server's threads and the machine spent on each callback."""
    before = thread_samples(pid)
    busy_before, all_before = machine_busy_ticks()
    started = time.monotonic()
    result = run_wrk(port, callbacks, arguments)
    wall = time.monotonic() - started
    busy_after, all_after = machine_busy_ticks()
    result.update(
        cpu_per_callback(before, thread_samples(pid), result["answers"], result["seconds"])
    )
    # CPUs busy on average, wrk and the kernel included: at the machine's count, none was idle.
    busy_share = (busy_after - busy_before) / max(all_after - all_before, 1)
    result["machine_busy_cpus"] = busy_share * (os.cpu_count() or 1)
    result["machine_cpu_us"] = result["machine_busy_cpus"] * wall * 1e6 / max(result["answers"], 1)
    return result


def count_events(database: Path) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        return int(connection.execute("SELECT count(*) FROM events").fetchone()[0])


def measure_bare(
    here: Path, callbacks: Path, arguments: argparse.Namespace, loop: str = "asyncio"
) -> dict[str, Any]:
    port = free_port()
    process = start([sys.executable, str(here / "bare_server.py"), str(port), loop], port)
    try:
        return run_wrk_measured(process.pid, port, callbacks, arguments)
    finally:
        process.terminate()
        process.wait(timeout=30)


def measure_floor(
    here: Path,
    directory: Path,
    callbacks: Path,
    arguments: argparse.Namespace,
    mode: str = "full",
) -> dict[str, Any]:
    """One run against bench/floor_server.py in `mode` on a new database."""
    port = free_port()
    database = directory / f"wrk-floor-{port}.sqlite3"
    command = [sys.executable, str(here / "floor_server.py"), str(port), str(database), mode]
    process = start(command, port)
    try:
        return run_wrk_measured(process.pid, port, callbacks, arguments)
    finally:
        process.terminate()
        process.wait(timeout=30)


def measure_bridge(
    directory: Path,
    shop_url: str,
    callbacks: Path,
    arguments: argparse.Namespace,
    database: Path | None = None,
) -> dict[str, Any]:
    """One run against `serve` on `database` (a new one by default).

    wrk's figures, start to ready, RSS, and the events the run stored.
    """
    port = free_port()
    database = database or directory / f"wrk-bridge-{port}.sqlite3"
    stored_before = count_events(database) if database.exists() else 0
    config = bridge_config(directory, port, 256, shop_url, database)
    process, ready_seconds = start_bridge(config, directory / "notify.sock")
    try:
        time.sleep(IDLE_SECONDS)
        idle_kib = rss_kib(process.pid)
        result = run_wrk_measured(process.pid, port, callbacks, arguments)
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
        "stored": count_events(database) - stored_before,
    }


def cpu_summary(run: dict[str, Any]) -> str:
    """Where a run's CPU went, per callback (a run's figures, or the medians of several)."""
    return (
        f"per callback: loop thread {run['loop_us']:.0f} µs on a CPU"
        f" ({run['loop_system_us']:.0f} in the kernel)"
        f" + {run['loop_wait_us']:.0f} µs waiting for one,"
        f" switches {run['loop_voluntary']:.2f} blocked / {run['loop_involuntary']:.2f} preempted;"
        f" other threads {run['other_threads_us']:.0f} µs;"
        f" machine {run['machine_cpu_us']:.0f} µs"
        f"\n         loop thread on a CPU {run['loop_busy']:.0%} of the answering window;"
        f" machine {run['machine_busy_cpus']:.2f} of {os.cpu_count()} CPUs busy"
    )


def describe(name: str, run: dict[str, Any]) -> str:
    line = (
        f"{name:6} {run['per_second']:6.0f}/s  p50 {run['p50_ms']:5.1f} ms"
        f"  p99 {run['p99_ms']:5.1f} ms  {run['ok']} 2xx in {run['seconds']:.2f} s"
        f"  non-2xx {run['non_2xx']}  socket errors {run['socket_error_count']}"
        f"\n         {cpu_summary(run)}"
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


Results = dict[str, list[dict[str, Any]]]
CPU_KEYS = (
    "loop_us",
    "loop_system_us",
    "loop_wait_us",
    "loop_voluntary",
    "loop_involuntary",
    "loop_busy",
    "other_threads_us",
    "machine_cpu_us",
    "machine_busy_cpus",
)


def median_of(results: Results, name: str, key: str) -> float:
    return statistics.median(run[key] for run in results[name])


def record(
    results: Results,
    round_number: int,
    name: str,
    run: dict[str, Any],
    arguments: argparse.Namespace,
) -> list[str]:
    """Keep and print one run; returns its warnings, printed too."""
    results[name].append(run)
    print(f"round {round_number} {describe(name, run)}", flush=True)
    found = warnings(run, arguments)
    for warning in found:
        print(warning, flush=True)
    return found


def print_ratio(results: Results, top: str, bottom: str, label: str) -> None:
    """`top`'s rate over `bottom`'s, within each round and of the medians.

    Ratios within a round are the fair ones: both runs met the same machine.
    """
    ratios = [
        high["per_second"] / low["per_second"]
        for low, high in zip(results[bottom], results[top], strict=True)
    ]
    of_medians = median_of(results, top, "per_second") / median_of(results, bottom, "per_second")
    print(
        f"{label}: {statistics.median(ratios):.2f}x median of rounds"
        f" ({', '.join(f'{ratio:.2f}' for ratio in ratios)}); of medians {of_medians:.2f}x"
    )


def compare_with_bare_wrk(
    here: Path, directory: Path, shop_url: str, arguments: argparse.Namespace
) -> None:
    """Per round: the bare handler and the bridge (group commit), alternating which goes first."""
    callbacks = directory / "callbacks.tsv"
    write_callbacks(callbacks, arguments.requests)
    results: Results = {"bare": [], "bare-uv": [], "bridge": []}
    if arguments.floor:
        results["floor"] = []
    if arguments.commit_floor:
        results["commit"] = []
    notes = []
    for round_number in range(1, arguments.rounds + 1):
        names = list(results) if round_number % 2 else list(reversed(results))
        for name in names:
            if name == "bare":
                run = measure_bare(here, callbacks, arguments)
            elif name == "bare-uv":
                run = measure_bare(here, callbacks, arguments, loop="uvloop")
            elif name == "floor":
                run = measure_floor(here, directory, callbacks, arguments)
            elif name == "commit":
                run = measure_floor(here, directory, callbacks, arguments, "commit-only")
            else:
                run = measure_bridge(directory, shop_url, callbacks, arguments)
            for warning in record(results, round_number, name, run, arguments):
                notes.append(f"round {round_number} {name}: {warning}")
            if name == "bridge":
                check_stored(run)

    def median(name: str, key: str) -> float:
        return median_of(results, name, key)

    print(f"\nmedians of {arguments.rounds} rounds")
    for name in results:
        medians = {key: median(name, key) for key in CPU_KEYS}
        print(
            f"  {name:7} {median(name, 'per_second'):6.0f}/s  p50 {median(name, 'p50_ms'):5.1f} ms"
            f"  p99 {median(name, 'p99_ms'):5.1f} ms\n          {cpu_summary(medians)}"
        )
    print(
        f"  bridge: start to ready {median('bridge', 'ready_s'):.2f} s,"
        f" RSS idle {median('bridge', 'idle_mib'):.1f} MiB, end {median('bridge', 'end_mib'):.1f},"
        f" peak {median('bridge', 'peak_mib'):.1f}"
    )
    print_ratio(results, "bridge", "bare", "bridge / bare aiohttp (asyncio's loop)")
    print_ratio(results, "bridge", "bare-uv", "bridge / bare aiohttp on uvloop")
    if arguments.floor:
        print_ratio(results, "floor", "bare", "floor / bare aiohttp (asyncio's loop)")
    if arguments.commit_floor:
        print_ratio(results, "commit", "bare", "commit only / bare aiohttp (asyncio's loop)")
    print("every bridge run: events stored = 2xx answers")
    for note in notes:
        print(note)


def compare_prefilled_wrk(directory: Path, shop_url: str, arguments: argparse.Namespace) -> None:
    """Per round: the bridge on an empty database and on a prefilled one, under wrk."""
    source = prefilled_database(directory, arguments.prefill)
    callbacks = directory / "callbacks.tsv"
    write_callbacks(callbacks, arguments.requests)
    results: Results = {"empty": [], "prefilled": []}
    for round_number in range(1, arguments.rounds + 1):
        copy = round_copy(source, directory)
        names = list(results) if round_number % 2 else list(reversed(results))
        for name in names:
            database = copy if name == "prefilled" else None
            run = measure_bridge(directory, shop_url, callbacks, arguments, database)
            record(results, round_number, name, run, arguments)
            check_stored(run)
        remove_database(copy)

    print(f"\nmedians of {arguments.rounds} rounds")
    for name in results:
        figures = {key: median_of(results, name, key) for key in ("per_second", "p50_ms", "p99_ms")}
        print(
            f"  {name:9} {figures['per_second']:6.0f}/s  p50 {figures['p50_ms']:5.1f} ms"
            f"  p99 {figures['p99_ms']:5.1f} ms  ready {median_of(results, name, 'ready_s'):.2f} s"
        )
    print_ratio(results, "prefilled", "empty", f"prefilled ({arguments.prefill} events) / empty")
