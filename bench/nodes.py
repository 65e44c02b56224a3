"""Ingest on SQLite against MariaDB, one node against two, in the same run.

    python bench/nodes.py [--requests 4000] [--concurrency 32] [--rounds 3] [--runs NAME,...]

Starts a throwaway MariaDB (tests/mariadb.py; the server binaries come from
Debian: `apt-get install -y mariadb-server`) and a simulated shop that takes
100 ms per request (bench/shop_server.py), then, each round, sends the same
load as bench/ingest.py (unique signed callbacks over loopback at a fixed
concurrency, from a process of its own) to each of:

- bare: an aiohttp handler that reads the body and answers (bench/bare_server.py);
- sqlite: one `cryptum-bridge serve` on a new SQLite file;
- mariadb: one node on a new MariaDB database;
- mariadb_2: two nodes on one new MariaDB database, each load connection
  keeping to one of them (half the connections each);
- mariadb_b1: one node on MariaDB with `storage.commit_batch_max = 1`: every
  callback a transaction, and a redo-log flush, of its own.

The order of the runs is reversed every other round, so that neither end of
the round always meets the machine in the same state. Every bridge delivers
in the background, to the shop, as in production. Prints every run (with the
callbacks found stored afterwards, and the CPU used during the load, in
cores, by the nodes, by mariadbd and by the load generator: they share the
machine's cores), then the medians as a Markdown table and the ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from ingest import (
    bridge_config,
    free_port,
    remove_database,
    run_load,
    start,
    wait_listening,
)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from mariadb import PASSWORD, MariaDB  # noqa: E402 - tests/ is on the path only now

GROUPED = 256
SHOP_ORDERS = 1000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass(frozen=True)
class Kind:
    """One kind of run: what serves the load."""

    name: str
    label: str
    nodes: int = 1
    engine: str = "sqlite"  # or "mariadb", or "bare"
    batch_max: int = GROUPED


KINDS = (
    Kind("bare", "bare aiohttp handler", engine="bare"),
    Kind("sqlite", "1 node, SQLite"),
    Kind("mariadb", "1 node, MariaDB", engine="mariadb"),
    Kind("mariadb_2", "2 nodes, one MariaDB database", nodes=2, engine="mariadb"),
    Kind("mariadb_b1", "1 node, MariaDB, `commit_batch_max = 1`", engine="mariadb", batch_max=1),
)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process `pid` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU time every CPU of the machine spent busy (user, system, interrupts) so far."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq = stat.readline().split()[1:8]
    return sum(int(ticks) for ticks in (user, nice, system, irq, softirq)) / CLOCK_TICKS


@dataclass
class CpuMeter:
    """CPU used between `start` and `stop`, in cores (CPU s per wall s): by some
    processes, and by the whole machine (`machine`), other work on it included."""

    pids: dict[str, list[int]]
    _before: dict[str, float] = field(default_factory=dict)
    _began: float = 0.0
    used: dict[str, float] = field(default_factory=dict)
    cores: dict[str, float] = field(default_factory=dict)

    def _sample(self) -> dict[str, float]:
        sample = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in self.pids.items()}
        return {**sample, "machine": machine_busy_seconds()}

    def start(self) -> None:
        self._began = time.perf_counter()
        self._before = self._sample()

    def stop(self) -> None:
        wall = time.perf_counter() - self._began
        after = self._sample()
        self.used = {name: after[name] - self._before[name] for name in after}
        self.cores = {name: used / wall for name, used in self.used.items()}


@dataclass
class Bench:
    """What every run needs: the scratch directory, the shop, the MariaDB server, the load."""

    directory: Path
    shop_url: str
    server: MariaDB | None
    requests: int
    concurrency: int

    def commands(
        self, kind: Kind, run: str
    ) -> tuple[list[list[str]], list[int], Callable[[], int]]:
        """The command of each process to start, their ports, and a count of what got stored."""
        ports = [free_port() for _ in range(kind.nodes)]
        if kind.engine == "bare":
            return [[sys.executable, str(HERE / "bare_server.py"), str(ports[0])]], ports, lambda: 0
        if kind.engine == "sqlite":
            database = self.directory / f"{run}.sqlite3"
            configs = [
                bridge_config(self.directory, ports[0], kind.batch_max, self.shop_url, database)
            ]
            stored = partial(sqlite_count, database)
        else:
            assert self.server is not None
            server, name = self.server, self.server.new_database(run)
            configs = [
                bridge_config(
                    self.directory,
                    port,
                    kind.batch_max,
                    self.shop_url,
                    mysql=(server.url(name), PASSWORD),
                )
                for port in ports
            ]
            stored = partial(mariadb_count, server, name)
        serve = [sys.executable, "-m", "bridge", "serve", "--config"]
        return [[*serve, str(config)] for config in configs], ports, stored

    def measure(self, kind: Kind, run: str) -> dict[str, float]:
        commands, ports, stored = self.commands(kind, run)
        processes: list[subprocess.Popen[bytes]] = []
        try:
            for command, port in zip(commands, ports, strict=True):
                processes.append(start(command, port))
            pids = {"nodes": [process.pid for process in processes]}
            if self.server is not None:
                pids["db"] = [self.server.process.pid]
            meter = CpuMeter(pids)
            urls = [f"http://127.0.0.1:{port}/callbacks/cryptum" for port in ports]
            figures = run_load(
                urls, self.requests, self.concurrency, on_start=meter.start, on_end=meter.stop
            )
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=60)
        return {
            **figures,
            "stored": stored(),
            "cpu_nodes": meter.cores["nodes"],
            "cpu_db": meter.cores.get("db", 0.0),
            "cpu_load": figures["load_cpu_s"] / figures["seconds"],
            "cpu_machine": meter.cores["machine"],
            # Less noisy than the rate on a busy machine: what each callback cost.
            "us_per_callback": (meter.used["nodes"] + meter.used.get("db", 0.0))
            / self.requests
            * 1e6,
        }


def sqlite_count(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        (count,) = connection.execute("SELECT count(*) FROM events").fetchone()
    remove_database(database)
    return int(count)


def mariadb_count(server: MariaDB, name: str) -> int:
    count = int(server.sql(f"SELECT count(*) FROM {name}.events").strip())
    server.sql(f"DROP DATABASE {name}")
    return count


def run_line(prefix: str, kind: Kind, figures: dict[str, float]) -> str:
    cpu = f"CPU nodes {figures['cpu_nodes']:.2f}"
    stored = "-"
    if kind.engine != "bare":
        cpu += f"  db {figures['cpu_db']:.2f}"
        stored = f"{figures['stored']:.0f}"
    return (
        f"{prefix} {kind.name:10} {figures['per_second']:7.0f}/s"
        f"  p50 {figures['p50_ms']:6.1f} ms  p99 {figures['p99_ms']:6.1f} ms"
        f"  non-200 {figures['failures']:.0f}  stored {stored}"
        f"  CPU per callback {figures['us_per_callback']:4.0f} us  {cpu}"
        f"  load {figures['cpu_load']:.2f}  machine {figures['cpu_machine']:.2f}"
    )


def summary(kinds: list[Kind], results: dict[str, list[dict[str, float]]]) -> None:
    """The medians as a Markdown table (the one docs/scaling.md shows), then the ratios."""

    def median(name: str, key: str) -> float:
        return statistics.median(run[key] for run in results[name])

    bare = median("bare", "per_second") if "bare" in results else None
    print(
        "\n| run | accepted/s | ÷ bare | p50 / p99 | CPU per callback, nodes + MariaDB |"
        " CPU during the load, cores: nodes / MariaDB / load generator / whole machine |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for kind in kinds:
        rate = median(kind.name, "per_second")
        ratio = f"{rate / bare:.2f}{TIMES}" if bare else "-"
        db = "-" if kind.engine in ("bare", "sqlite") else f"{median(kind.name, 'cpu_db'):.2f}"
        rate_text = f"{rate:,.0f}".replace(",", " ")
        print(
            f"| {kind.label} | {rate_text}/s"
            f" | {ratio} | {median(kind.name, 'p50_ms'):.1f} / {median(kind.name, 'p99_ms'):.1f}"
            f" ms | {median(kind.name, 'us_per_callback'):.0f} µs"
            f" | {median(kind.name, 'cpu_nodes'):.2f} / {db}"
            f" / {median(kind.name, 'cpu_load'):.2f} / {median(kind.name, 'cpu_machine'):.2f} |"
        )
    print()
    for top, bottom, what in (
        ("mariadb", "sqlite", "1 node, MariaDB / SQLite"),
        ("mariadb_2", "mariadb", "2 nodes / 1 node, MariaDB"),
        ("mariadb", "mariadb_b1", "group commit on MariaDB (256 / 1)"),
    ):
        if top in results and bottom in results:
            ratios = [
                a["per_second"] / b["per_second"]
                for a, b in zip(results[top], results[bottom], strict=True)
            ]
            print(
                f"{what}: {statistics.median(ratios):.2f}{TIMES} (median of rounds:"
                f" {', '.join(f'{ratio:.2f}' for ratio in ratios)})"
            )


def describe_server(server: MariaDB) -> str:
    version, flush, log_bin, pool = server.sql(
        "SELECT VERSION(), @@innodb_flush_log_at_trx_commit, @@log_bin, @@innodb_buffer_pool_size"
    ).split()
    binlog = "on" if log_bin == "1" else "off"
    return (
        f"MariaDB {version}, innodb_flush_log_at_trx_commit={flush}, binary log {binlog},"
        f" buffer pool {int(pool) >> 20} MiB, on this machine's disk"
    )


def run_rounds(
    directory: Path, shop_url: str, kinds: list[Kind], arguments: argparse.Namespace
) -> None:
    """Every round, each kind of run once; then the summary."""
    server = None
    if any(kind.engine == "mariadb" for kind in kinds):
        server = MariaDB.start(directory / "mariadb")
    try:
        if server is not None:
            print(f"server: {describe_server(server)}", flush=True)
        bench = Bench(directory, shop_url, server, arguments.requests, arguments.concurrency)
        results: dict[str, list[dict[str, Any]]] = {kind.name: [] for kind in kinds}
        for number in range(1, arguments.rounds + 1):
            order = kinds if number % 2 else kinds[::-1]
            for kind in order:
                figures = bench.measure(kind, f"{kind.name}_{number}")
                results[kind.name].append(figures)
                print(run_line(f"round {number}", kind, figures), flush=True)
    finally:
        if server is not None:
            server.stop()
    print(f"\nmedians of {arguments.rounds} rounds")
    summary(kinds, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--runs",
        default=",".join(kind.name for kind in KINDS),
        help="which runs, comma-separated (default: all)",
    )
    arguments = parser.parse_args()
    chosen = set(arguments.runs.split(","))
    unknown = chosen - {kind.name for kind in KINDS}
    if unknown:
        parser.error(f"unknown runs: {', '.join(sorted(unknown))}")
    kinds = [kind for kind in KINDS if kind.name in chosen]

    began = time.perf_counter()
    print(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python"
        f" {platform.python_version()}; load generator, nodes and mariadbd share the CPUs"
    )
    print(
        f"load: {arguments.requests} unique signed callbacks a run, concurrency"
        f" {arguments.concurrency} (split across the nodes); deliveries run to a shop taking"
        f" 100 ms per request",
        flush=True,
    )
    shop_port = free_port()
    shop = subprocess.Popen(
        [sys.executable, str(HERE / "shop_server.py"), str(shop_port), str(SHOP_ORDERS)],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_listening(shop_port)
        with tempfile.TemporaryDirectory(prefix="bench-nodes-") as scratch:
            run_rounds(Path(scratch), f"http://127.0.0.1:{shop_port}", kinds, arguments)
    finally:
        shop.terminate()
        shop.wait(timeout=30)
    print(f"\ntotal time: {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
