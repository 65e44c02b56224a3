"""Ingest throughput of a running bridge against a bare aiohttp server, in the same run.

    python bench/ingest.py [--requests 4000] [--concurrency 32] [--rounds 3]
    python bench/ingest.py --prefill 1000000 [--requests 4000] [--concurrency 32] [--rounds 3]
    python bench/ingest.py --generator wrk [--requests 200000] [--concurrency 50] [--duration 8]
                           [--rounds 3] [--floor] [--commit-floor]

Each round runs the same load (unique signed callbacks over loopback, at a
fixed concurrency) against: a bare aiohttp handler, the bridge with group
commit, and the bridge committing every callback on its own
(`storage.commit_batch_max = 1`). The bridge delivers in the background as
it would in production, to a simulated shop (bench/shop_server.py) that
takes 100 ms per request. Prints accepted/s and p50/p99 latency per
run, then medians and ratios. The machine is shared and noisy: compare the
medians and ratios, not single runs.

With `--prefill N`, each round instead runs the bridge (group commit) twice
with the same load: on an empty database, and on a copy of one already
holding N past events with their deliveries finished (bench/prefill.py,
built once per benchmark run), and prints the ratio prefilled / empty.

With `--generator wrk`, the load comes from wrk, a C load generator
(`apt-get install -y wrk`), in place of the Python one: `wrk -t1 -c50 -d8s
--latency` sends each of 200 000 pre-signed unique callbacks at most once
(bench/wrk_callbacks.lua). Each round runs it against the bare handler (on
asyncio's loop and on uvloop) and the bridge with group commit, and with
`--floor` / `--commit-floor` against bench/floor_server.py in its two
modes, alternating which goes first, each bridge run on a new database.
Prints per run and as medians accepted/s, p50/p99 latency, where the CPU
went, the bridge's start to ready and RSS (idle, at the end, peak), and the
ratios to the bare handler; a bridge run whose database does not hold
exactly the callbacks answered 2xx fails the benchmark (bench/wrk_ingest.py).

bench/nodes.py runs the same load against SQLite and MariaDB, one node and two.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import aiohttp
from prefill import Shop, prefill

from bridge.signature import sign

SECRET = "whsec_bench_0123456789"
STORE_NAME = "bench"
STORE_ID = "bench-store-0001"
# Opening a big database can take longer than an empty one (a cold page cache).
PREFILLED_READY_TIMEOUT = 300.0


def start_report(script: str, tools: tuple[str, ...]) -> None:
    """Stop if a tool is missing; else print the command and the machine, as every report starts."""
    for tool in tools:
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (see this script's docstring)")
    print(f"command: python bench/{script} {' '.join(sys.argv[1:])}".rstrip())
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}\n"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def wait_listening(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def bridge_config(
    directory: Path,
    port: int,
    batch_max: int,
    shop_url: str,
    database: Path | None = None,
    *,
    mysql: tuple[str, str] | None = None,
) -> Path:
    """A config for `serve` listening on `port`.

    The storage is `mysql` (a URL and its password) if given, else the SQLite
    file `database`, else a new empty SQLite file in `directory`.
    """
    config = directory / f"bench-{batch_max}-{port}.toml"
    if mysql is not None:
        location = f'url = "{mysql[0]}"\npassword = "{mysql[1]}"'
    else:
        if database is None:
            database = directory / f"bench-{batch_max}-{uuid.uuid4().hex[:6]}.sqlite3"
        location = f'path = "{database}"'
    config.write_text(
        f"""
[server]
listen = "127.0.0.1:{port}"
[storage]
{location}
commit_batch_max = {batch_max}
[logging]
format = "json"
level = "info"
[[stores]]
name = "{STORE_NAME}"
cryptum_store_id = "{STORE_ID}"
webhook_secret = "{SECRET}"
woocommerce.url = "{shop_url}"
woocommerce.consumer_key = "ck_bench"
woocommerce.consumer_secret = "cs_bench"
"""
    )
    return config


def make_requests(count: int) -> list[tuple[bytes, str]]:
    requests = []
    for number in range(count):
        body = json.dumps(
            {
                "message": "Payment was successful",
                "status": "confirmed",
                "orderId": str(uuid.uuid4()),
                "ecommerceOrderId": str(1000 + number % 1000),
                "storeId": STORE_ID,
                "transactions": [{"protocol": "POLYGON", "hash": "0x" + uuid.uuid4().hex * 2}],
                "updatedProducts": None,
            }
        ).encode()
        requests.append((body, sign(body, SECRET)))
    return requests


async def _load(
    urls: str | list[str],
    requests: list[tuple[bytes, str]],
    concurrency: int,
    on_start: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Send `requests` from `concurrency` connections; connection i sends to `urls[i % len]`."""
    if isinstance(urls, str):
        urls = [urls]
    latencies: list[float] = []
    failures = 0
    pending = iter(requests)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(url: str) -> None:
            nonlocal failures
            for body, signature in pending:
                started = time.perf_counter()
                async with session.post(
                    url, data=body, headers={"X-Webhook-Signature": signature}
                ) as response:
                    await response.read()
                    if response.status != 200:
                        failures += 1
                latencies.append(time.perf_counter() - started)

        if on_start is not None:
            on_start()
        started = time.perf_counter()
        cpu_started = time.process_time()
        await asyncio.gather(*(worker(urls[i % len(urls)]) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    latencies.sort()
    return {
        "per_second": len(requests) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "failures": failures,
        "seconds": elapsed,
        "load_cpu_s": cpu,
    }


_STARTED = "started"


def _load_in_process(
    urls: str | list[str], count: int, concurrency: int, queue: multiprocessing.Queue
) -> None:
    requests = make_requests(count)
    queue.put(asyncio.run(_load(urls, requests, concurrency, lambda: queue.put(_STARTED))))


def run_load(
    urls: str | list[str],
    count: int,
    concurrency: int,
    *,
    on_start: Callable[[], None] | None = None,
    on_end: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Drive the load from its own process, so client and server do not share an event loop.

    With several `urls`, each connection keeps to one of them. `on_start` and
    `on_end` run here when the load begins (its requests made, the session
    open) and when its results arrive.
    """
    queue: multiprocessing.Queue = multiprocessing.Queue()
    worker = multiprocessing.Process(
        target=_load_in_process, args=(urls, count, concurrency, queue)
    )
    worker.start()
    result = queue.get()
    if result == _STARTED:
        if on_start is not None:
            on_start()
        result = queue.get()
    if on_end is not None:
        on_end()
    worker.join()
    return result


def start(command: list[str], port: int, ready_timeout: float = 20.0) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(f"http://127.0.0.1:{port}/healthz", timeout=ready_timeout)
    return process


def measure_bridge(
    directory: Path, shop_url: str, requests: int, concurrency: int, database: Path | None = None
) -> dict[str, float]:
    """One load against `serve` with group commit, timing its start too."""
    port = free_port()
    config = bridge_config(directory, port, 256, shop_url, database)
    command = [sys.executable, "-m", "bridge", "serve", "--config", str(config)]
    started = time.perf_counter()
    process = start(command, port, ready_timeout=PREFILLED_READY_TIMEOUT)
    ready_seconds = time.perf_counter() - started
    try:
        figures = run_load(f"http://127.0.0.1:{port}/callbacks/cryptum", requests, concurrency)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {**figures, "ready_s": ready_seconds}


def prefilled_database(directory: Path, events: int) -> Path:
    """The database with `events` past events, built once for the whole run."""
    path = directory / f"prefilled-{events}.sqlite3"
    if not path.exists():
        print(f"prefilling a database with {events} events ...", end=" ", flush=True)
        result = prefill(path, events, shop=Shop(STORE_NAME, STORE_ID))
        print(f"{result.seconds:.0f} s, {result.size_bytes / 2**20:,.0f} MiB", flush=True)
    return path


def round_copy(source: Path, directory: Path) -> Path:
    """A copy of `source` for one round, so every round starts from the same state."""
    copy = directory / "round.sqlite3"
    shutil.copyfile(source, copy)
    # Write the copied gigabyte out now: left to the kernel, its writeback
    # would compete with the bridge's fsyncs during the measurement.
    os.sync()
    return copy


def remove_database(path: Path) -> None:
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        file.unlink(missing_ok=True)


def print_medians(results: dict[str, list[dict[str, float]]]) -> Callable[[str, str], float]:
    """Print each run kind's medians; returns the median of one figure of one kind."""

    def median(name: str, key: str) -> float:
        return statistics.median(run[key] for run in results[name])

    print("\nmedians")
    for name, runs in results.items():
        ready = f"  ready in {median(name, 'ready_s'):.2f} s" if "ready_s" in runs[0] else ""
        print(
            f"  {name:9} {median(name, 'per_second'):8.0f}/s  p50 {median(name, 'p50_ms'):6.1f} ms"
            f"  p99 {median(name, 'p99_ms'):6.1f} ms{ready}"
        )
    return median


def compare_with_bare(
    here: Path, directory: Path, shop_url: str, arguments: argparse.Namespace
) -> None:
    """Per round: a bare aiohttp server, the bridge, the bridge without group commit."""
    results: dict[str, list[dict[str, float]]] = {"bare": [], "bridge": [], "no_group": []}
    for round_number in range(1, arguments.rounds + 1):
        for name in results:
            port = free_port()
            if name == "bare":
                command = [sys.executable, str(here / "bare_server.py"), str(port)]
            else:
                batch_max = 256 if name == "bridge" else 1
                config = bridge_config(directory, port, batch_max, shop_url)
                command = [sys.executable, "-m", "bridge", "serve", "--config", str(config)]
            process = start(command, port)
            try:
                figures = run_load(
                    f"http://127.0.0.1:{port}/callbacks/cryptum",
                    arguments.requests,
                    arguments.concurrency,
                )
            finally:
                process.terminate()
                process.wait(timeout=30)
            results[name].append(figures)
            print(
                f"round {round_number} {name:9} {figures['per_second']:8.0f}/s"
                f"  p50 {figures['p50_ms']:6.1f} ms  p99 {figures['p99_ms']:6.1f} ms"
                f"  non-200: {figures['failures']:.0f}"
            )

    median = print_medians(results)
    bridge = median("bridge", "per_second")
    print(f"bridge / bare aiohttp:             {bridge / median('bare', 'per_second'):.2f}x")
    print(f"group commit / commit per request: {bridge / median('no_group', 'per_second'):.2f}x")


def compare_prefilled(directory: Path, shop_url: str, arguments: argparse.Namespace) -> None:
    """Per round: the bridge on an empty database and on a prefilled one, then medians."""
    source = prefilled_database(directory, arguments.prefill)
    results: dict[str, list[dict[str, float]]] = {"empty": [], "prefilled": []}
    for round_number in range(1, arguments.rounds + 1):
        copy = round_copy(source, directory)
        # Alternate which goes first, so that neither always meets the machine
        # in the same state (page cache, other load on the machine, the shop's orders).
        names = ["empty", "prefilled"] if round_number % 2 else ["prefilled", "empty"]
        for name in names:
            figures = measure_bridge(
                directory,
                shop_url,
                arguments.requests,
                arguments.concurrency,
                database=copy if name == "prefilled" else None,
            )
            results[name].append(figures)
            print(
                f"round {round_number} {name:9} {figures['per_second']:8.0f}/s"
                f"  p50 {figures['p50_ms']:6.1f} ms  p99 {figures['p99_ms']:6.1f} ms"
                f"  non-200: {figures['failures']:.0f}  ready in {figures['ready_s']:.2f} s",
                flush=True,
            )
        remove_database(copy)

    median = print_medians(results)
    # Ratios within a round are the fair ones: both runs met the same machine.
    ratios = [
        prefilled["per_second"] / empty["per_second"]
        for empty, prefilled in zip(results["empty"], results["prefilled"], strict=True)
    ]
    print(
        f"prefilled ({arguments.prefill} events) / empty: {statistics.median(ratios):.2f}x"
        f" median of rounds ({', '.join(f'{ratio:.2f}' for ratio in ratios)});"
        f" of medians {median('prefilled', 'per_second') / median('empty', 'per_second'):.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--generator",
        choices=["python", "wrk"],
        default="python",
        help="what sends the load: the Python generator, or wrk (apt-get install -y wrk)",
    )
    parser.add_argument("--requests", type=int, help="callbacks signed (4000; wrk: 200000)")
    parser.add_argument("--concurrency", type=int, help="connections (32; wrk: 50)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--duration", type=int, help="seconds of each wrk run (wrk only; default 8)"
    )
    parser.add_argument(
        "--prefill",
        type=int,
        default=0,
        metavar="N",
        help="compare the bridge on an empty database with one holding N past events",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also run bench/floor_server.py, the least a callback can cost (wrk only)",
    )
    parser.add_argument(
        "--commit-floor",
        action="store_true",
        help="also run bench/floor_server.py commit-only: the bare handler plus the durable"
        " commit, nothing else (wrk only)",
    )
    arguments = parser.parse_args()
    wrk = arguments.generator == "wrk"
    if arguments.floor and not wrk:
        parser.error("--floor is for --generator wrk")
    if arguments.commit_floor and not wrk:
        parser.error("--commit-floor is for --generator wrk")
    if not wrk and arguments.duration is not None:
        parser.error("--duration is for --generator wrk")
    if arguments.requests is None:
        arguments.requests = 200000 if wrk else 4000
    if arguments.concurrency is None:
        arguments.concurrency = 50 if wrk else 32
    if arguments.duration is None:
        arguments.duration = 8

    here = Path(__file__).resolve().parent
    if wrk:
        # Imported here: wrk_ingest imports this module.
        from wrk_ingest import compare_prefilled_wrk, compare_with_bare_wrk, print_header

        print_header(arguments)
    else:
        print(f"machine: {platform.platform()}, {os.cpu_count()} cpus,", end=" ")
        print(f"Python {platform.python_version()}")
        print(f"load: {arguments.requests} unique signed callbacks,", end=" ")
        print(f"concurrency {arguments.concurrency}", flush=True)
    shop_port = free_port()
    shop = subprocess.Popen(
        [sys.executable, str(here / "shop_server.py"), str(shop_port), "1000"],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_listening(shop_port)
        shop_url = f"http://127.0.0.1:{shop_port}"
        with tempfile.TemporaryDirectory() as directory:
            if arguments.prefill and wrk:
                compare_prefilled_wrk(Path(directory), shop_url, arguments)
            elif arguments.prefill:
                compare_prefilled(Path(directory), shop_url, arguments)
            elif wrk:
                compare_with_bare_wrk(here, Path(directory), shop_url, arguments)
            else:
                compare_with_bare(here, Path(directory), shop_url, arguments)
    finally:
        shop.terminate()
        shop.wait(timeout=30)


if __name__ == "__main__":
    main()
