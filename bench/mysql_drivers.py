"""asyncmy or aiomysql: which asyncio MySQL driver the bridge's MariaDB engine should use.

    python bench/mysql_drivers.py [--rounds 3] [--events 20000]

Starts a throwaway MariaDB (tests/mariadb.py; the server binaries come from
Debian: `apt-get install -y mariadb-server`) and runs each driver in a
subprocess of its own, alternating the drivers over the rounds; prints every
round and the medians. For each driver it measures:

- ingest rate as the bridge stores callbacks: 32 concurrent callbacks feed a
  group-commit writer on one connection (READ COMMITTED, autocommit off); each
  batch (whatever is queued, at most 256) is one transaction: SELECT the keys
  already stored, a multi-row INSERT of the new ones, SELECT their ids, COMMIT.
  Also the rate with batches of 1 (no grouping, one fsync per event);
- memory: VmRSS before the import, after import and connect, and the peak
  (VmHWM) after the grouped ingest;
- import time of the driver module;
- the exception class and error code for a duplicate key (1062), a deadlock
  (1213), a lock wait timeout (1205), a query on a connection KILLed by
  another one (2013/2006), what a pool hands out after its connection was
  killed, and, last, a query and a connect once the server is stopped by
  SIGTERM (2013/2006 and 2003), each bounded by a 10 s timeout;
- the versions of the driver and of PyMySQL in its environment.

aiomysql 0.3.2 needs PyMySQL<1.2 (with 1.2 it fails to escape bytes
parameters), which asyncmy's environment need not have: aiomysql runs under
`--aiomysql-python`, or this interpreter if its PyMySQL is older than 1.2,
or else a throwaway venv made under a temporary directory
(`pip install aiomysql 'PyMySQL<1.2'`). If this interpreter has aiomysql with
PyMySQL 1.2 or later, the bytes escaping failure is probed and reported.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import importlib.metadata
import json
import os
import platform
import random
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DRIVERS = ("asyncmy", "aiomysql")
CONCURRENCY = 32
MAX_BATCH = 256
TIMEOUT = 10.0
PAYLOAD_BYTES = 768
RESULT_MARK = "RESULT "

EVENTS_TABLE = """
CREATE TABLE events (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    store VARCHAR(64) NOT NULL,
    body_sha256 BINARY(32) NOT NULL,
    cryptum_order_id VARCHAR(128) NOT NULL,
    status VARCHAR(32) NOT NULL,
    received_at DOUBLE NOT NULL,
    payload MEDIUMBLOB NOT NULL,
    UNIQUE KEY (store, cryptum_order_id, status, body_sha256)
) ENGINE=InnoDB
"""

Key = tuple[str, str, str, bytes]


# --------------------------------------------------------------------------
# The worker: one driver, in its own process and environment.


def proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def version_of(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "-"


class Driver:
    """What differs between asyncmy and aiomysql, behind one face."""

    def __init__(self, name: str, module: Any, options: argparse.Namespace) -> None:
        self.name = name
        self.module = module
        self.kwargs: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": options.port,
            "user": options.user,
            "password": options.password,
            "charset": "utf8mb4",
            "autocommit": False,
            ("database" if name == "asyncmy" else "db"): options.database,
        }

    async def connect(self, **overrides: Any) -> Any:
        connection = await self.module.connect(**{**self.kwargs, **overrides})
        await query(connection, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return connection

    async def pool(self, minsize: int, maxsize: int) -> Any:
        return await self.module.create_pool(minsize=minsize, maxsize=maxsize, **self.kwargs)


async def query(connection: Any, sql: str, args: Any = None) -> list[Any]:
    async with connection.cursor() as cursor:
        await cursor.execute(sql, args)
        if cursor.description is None:
            return []
        return list(await cursor.fetchall())


async def fetch_into(rows: list[Any], connection: Any, sql: str) -> None:
    rows.extend(await query(connection, sql))


async def close(connection: Any) -> None:
    try:
        await asyncio.wait_for(connection.ensure_closed(), 2)
    except Exception:
        connection.close()


# Ingest ---------------------------------------------------------------------


def make_events(count: int, prefix: str) -> list[tuple[str, bytes, str, str, bytes]]:
    """(store, body_sha256, cryptum_order_id, status, payload); one in 20 a resent callback."""
    rng = random.Random(f"{prefix}-{count}")
    events: list[tuple[str, bytes, str, str, bytes]] = []
    for number in range(count):
        if number % 20 == 19:
            events.append(events[number - 10])
            continue
        payload = rng.randbytes(PAYLOAD_BYTES)
        events.append(
            (
                f"shop-{number % 7}",
                hashlib.sha256(payload).digest(),
                f"{prefix}-{number:08d}",
                ("paid", "pending", "confirmed")[number % 3],
                payload,
            )
        )
    return events


def where_keys(keys: list[Key]) -> str:
    rows = ", ".join(["(%s, %s, %s, %s)"] * len(keys))
    return f"(store, cryptum_order_id, status, body_sha256) IN ({rows})"


class GroupWriter:
    """Like bridge/storage/group_commit.py: one task commits whatever is queued, in one go."""

    def __init__(self, connection: Any, max_batch: int) -> None:
        self.connection = connection
        self.max_batch = max_batch
        self.queue: asyncio.Queue[tuple[Any, asyncio.Future[tuple[int, bool]]] | None]
        self.queue = asyncio.Queue()
        self.batches = 0
        self.task = asyncio.create_task(self.run())

    async def submit(self, event: Any) -> tuple[int, bool]:
        future: asyncio.Future[tuple[int, bool]] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((event, future))
        return await future

    async def close(self) -> None:
        self.queue.put_nowait(None)
        await self.task

    async def run(self) -> None:
        while (entry := await self.queue.get()) is not None:
            batch = [entry]
            while len(batch) < self.max_batch and not self.queue.empty():
                queued = self.queue.get_nowait()
                if queued is None:
                    self.queue.put_nowait(None)
                    break
                batch.append(queued)
            self.batches += 1
            try:
                results = await self.commit([event for event, _ in batch])
            except Exception as error:
                await self.connection.rollback()
                for _, future in batch:
                    future.set_exception(error)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                future.set_result(result)

    async def commit(self, events: list[Any]) -> list[tuple[int, bool]]:
        """One transaction: find stored keys, insert the new, read their ids, commit."""
        connection = self.connection
        keys = [(e[0], e[2], e[3], e[1]) for e in events]
        unique = list(dict.fromkeys(keys))
        select = "SELECT store, cryptum_order_id, status, body_sha256, id FROM events WHERE "
        found = await query(connection, select + where_keys(unique), [v for k in unique for v in k])
        stored = {(r[0], r[1], r[2], bytes(r[3])): r[4] for r in found}
        new = [k for k in unique if k not in stored]
        if new:
            first = dict(zip(keys, events, strict=True))  # later duplicates are the same event
            rows = [first[k] for k in new]
            now = time.time()
            await query(
                connection,
                "INSERT INTO events (store, body_sha256, cryptum_order_id, status, received_at,"
                " payload) VALUES " + ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(rows)),
                [v for e in rows for v in (e[0], e[1], e[2], e[3], now, e[4])],
            )
            ids = await query(connection, select + where_keys(new), [v for k in new for v in k])
            inserted = {(r[0], r[1], r[2], bytes(r[3])): r[4] for r in ids}
        else:
            inserted = {}
        await connection.commit()
        results = []
        accepted: set[Key] = set()
        for key in keys:
            if key in inserted and key not in accepted:
                accepted.add(key)
                results.append((inserted[key], False))
            else:
                results.append((stored.get(key) or inserted[key], True))
        return results


async def ingest(connection: Any, events: list[Any], max_batch: int) -> dict[str, Any]:
    writer = GroupWriter(connection, max_batch)
    incoming: Iterator[Any] = iter(events)
    duplicates = 0

    async def callback() -> None:
        nonlocal duplicates
        for event in incoming:  # shared: each callback takes the next request
            _, duplicate = await writer.submit(event)
            duplicates += duplicate

    started = time.perf_counter()
    await asyncio.gather(*(callback() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    await writer.close()
    return {
        "events_per_s": len(events) / elapsed,
        "mean_batch": len(events) / writer.batches,
        "duplicates": duplicates,
        "expected_duplicates": len(events) - len(set(events)),
    }


async def task_ingest(driver: Driver, options: argparse.Namespace) -> dict[str, Any]:
    connection = await driver.connect()
    result: dict[str, Any] = {"rss_connected_kib": proc_status_kib("VmRSS")}
    await query(connection, EVENTS_TABLE)
    grouped = await ingest(connection, make_events(options.events, "grouped"), MAX_BATCH)
    result["hwm_kib"] = proc_status_kib("VmHWM")
    single = await ingest(connection, make_events(options.single_events, "single"), 1)
    (rows,) = await query(connection, "SELECT COUNT(*) FROM events")
    await connection.commit()
    await close(connection)
    expected_rows = len(set(make_events(options.events, "grouped")))
    expected_rows += len(set(make_events(options.single_events, "single")))
    return {
        **result,
        "grouped": grouped,
        "single": single,
        "rows_ok": rows[0] == expected_rows
        and grouped["duplicates"] == grouped["expected_duplicates"]
        and single["duplicates"] == single["expected_duplicates"],
    }


# Error codes -----------------------------------------------------------------


def describe(
    error: BaseException | None,
    expected: tuple[type[BaseException], set[int]],
    elapsed: float | None = None,
) -> dict[str, Any]:
    """The exception's class and code, and whether they are the `expected` class and codes."""
    if error is None:
        return {"class": "no error", "code": None, "ok": False}
    kind = type(error)
    code = error.args[0] if error.args and isinstance(error.args[0], int) else None
    text = f"{kind.__module__}.{kind.__qualname__}"
    if isinstance(error, TimeoutError):
        text = f"hang (no answer in {TIMEOUT:.0f} s)"
    described: dict[str, Any] = {
        "class": text,
        "code": code,
        "ok": isinstance(error, expected[0]) and code in expected[1],
        "message": str(error)[:100],
    }
    if elapsed is not None:
        described["seconds"] = round(elapsed, 2)
    return described


async def attempt(awaitable: Any) -> tuple[BaseException | None, float]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(awaitable, TIMEOUT)
    except Exception as error:
        return error, time.perf_counter() - started
    return None, time.perf_counter() - started


async def task_errors(driver: Driver, options: argparse.Namespace) -> dict[str, Any]:
    found: dict[str, Any] = {}
    integrity, operational = driver.module.IntegrityError, driver.module.OperationalError
    a = await driver.connect()
    b = await driver.connect()
    await query(a, "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB")
    await query(a, "INSERT INTO t VALUES (1, 0), (2, 0)")
    await a.commit()

    # Duplicate key.
    error, _ = await attempt(query(a, "INSERT INTO t VALUES (1, 1)"))
    found["duplicate key"] = describe(error, (integrity, {1062}))
    await a.rollback()

    # Deadlock: two transactions update two rows in opposite order.
    await query(a, "UPDATE t SET v = v + 1 WHERE id = 1")
    await query(b, "UPDATE t SET v = v + 1 WHERE id = 2")
    first = asyncio.create_task(attempt(query(a, "UPDATE t SET v = v + 1 WHERE id = 2")))
    await asyncio.sleep(0.3)  # a now waits for b's lock
    second = asyncio.create_task(attempt(query(b, "UPDATE t SET v = v + 1 WHERE id = 1")))
    outcomes = [await first, await second]
    victims = [error for error, _ in outcomes if error is not None]
    found["deadlock"] = describe(victims[0] if victims else None, (operational, {1213}))
    found["deadlock"]["victims"] = len(victims)
    await a.rollback()
    await b.rollback()

    # Lock wait timeout.
    await query(a, "UPDATE t SET v = v + 1 WHERE id = 1")
    await query(b, "SET SESSION innodb_lock_wait_timeout = 1")
    error, elapsed = await attempt(query(b, "UPDATE t SET v = v + 1 WHERE id = 1"))
    found["lock wait timeout"] = describe(error, (operational, {1205}), elapsed)
    await a.rollback()
    await b.rollback()

    # A connection killed from another one, then a query on it.
    victim = await driver.connect()
    ((victim_id,),) = await query(victim, "SELECT CONNECTION_ID()")
    await query(a, f"KILL {victim_id}")
    await asyncio.sleep(0.2)
    error, _ = await attempt(query(victim, "SELECT 1"))
    found["query after KILL"] = describe(error, (operational, {2013, 2006}))
    victim.close()

    # A pool whose idle connection was killed: what does the next acquire give?
    pool = await driver.pool(minsize=1, maxsize=2)
    async with pool.acquire() as pooled:
        ((pooled_id,),) = await query(pooled, "SELECT CONNECTION_ID()")
        await pooled.commit()
    await query(a, f"KILL {pooled_id}")
    await asyncio.sleep(0.2)
    tries = []
    for _ in range(2):
        async with pool.acquire() as pooled:
            rows: list[Any] = []
            error, _ = await attempt(fetch_into(rows, pooled, "SELECT CONNECTION_ID()"))
            if error is None:
                fresh = "a new connection" if rows[0][0] != pooled_id else "the same connection"
                tries.append(f"works ({fresh})")
                break
            tries.append(f"{type(error).__name__} {describe(error, (operational, set()))['code']}")
    found["pool after KILL"] = {"class": "; then ".join(tries), "code": None}
    found["pool after KILL"]["ok"] = tries[0] == "works (a new connection)"
    pool.close()
    await pool.wait_closed()
    await close(a)
    await close(b)
    return {"errors": found}


async def task_stopped(driver: Driver, options: argparse.Namespace) -> dict[str, Any]:
    """Connect, say ready, wait for the parent to stop the server, then query and connect."""
    connection = await driver.connect()
    await query(connection, "SELECT 1")
    await connection.commit()
    print("READY", flush=True)
    sys.stdin.readline()  # the server is stopped now
    found = {}
    operational = driver.module.OperationalError
    error, elapsed = await attempt(query(connection, "SELECT 1"))
    found["query, server stopped"] = describe(error, (operational, {2013, 2006}), elapsed)
    connection.close()
    error, elapsed = await attempt(driver.connect())
    found["connect, server stopped"] = describe(error, (operational, {2003}), elapsed)
    return {"errors": found}


async def task_probe(driver: Driver, options: argparse.Namespace) -> dict[str, Any]:
    """aiomysql under PyMySQL>=1.2: a bytes parameter."""
    connection = await driver.connect()
    error, _ = await attempt(query(connection, "SELECT %s", (b"\x00\xffbytes",)))
    await close(connection)
    return {"probe": "ok" if error is None else f"{type(error).__name__}: {error}"}


TASKS = {"ingest": task_ingest, "errors": task_errors, "stopped": task_stopped, "probe": task_probe}


async def worker(options: argparse.Namespace) -> dict[str, Any]:
    rss_base = proc_status_kib("VmRSS")
    started = time.perf_counter()
    module = importlib.import_module(options.worker)
    import_ms = (time.perf_counter() - started) * 1000
    driver = Driver(options.worker, module, options)
    result = await TASKS[options.task](driver, options)
    return {
        "driver": options.worker,
        "version": version_of(options.worker),
        "pymysql": version_of("PyMySQL"),
        "python": sys.executable,
        "import_ms": import_ms,
        "rss_base_kib": rss_base,
        **result,
    }


# --------------------------------------------------------------------------
# The parent: the server, the environments, the rounds, the table.


def usable(python: str, driver: str) -> tuple[int, str]:
    """0 if `driver` imports under `python` (for aiomysql, with PyMySQL<1.2), 3 if its
    PyMySQL is too new, else 1; and the PyMySQL version or the error."""
    check = (
        "import importlib, importlib.metadata as m, sys\n"
        f"importlib.import_module({driver!r})\n"
        "v = m.version('PyMySQL') if " + repr(driver) + " == 'aiomysql' else '0'\n"
        "print(v)\n"
        "sys.exit(0 if tuple(int(p) for p in v.split('.')[:2]) < (1, 2) else 3)\n"
    )
    done = subprocess.run([python, "-c", check], capture_output=True, text=True)
    why = done.stdout.strip() or (done.stderr.strip().splitlines() or ["?"])[-1]
    return done.returncode, why


def aiomysql_python(requested: str | None, scratch: Path) -> str:
    if requested:
        status, why = usable(requested, "aiomysql")
        if status != 0:
            sys.exit(f"--aiomysql-python {requested}: no aiomysql with PyMySQL<1.2 ({why})")
        return requested
    if usable(sys.executable, "aiomysql")[0] == 0:
        return sys.executable
    venv = scratch / "venv-aiomysql"
    print(f"making a venv for aiomysql with PyMySQL<1.2 in {venv} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "aiomysql", "PyMySQL<1.2"], check=True
    )
    return python


def worker_command(
    python: str, driver: str, task: str, server: Any, options: argparse.Namespace
) -> list[str]:
    from mariadb import PASSWORD, USER

    return [
        python,
        str(Path(__file__).resolve()),
        "--worker",
        driver,
        "--task",
        task,
        "--port",
        str(server.port),
        "--database",
        server.new_database(f"{driver}_{task}"),
        "--user",
        USER,
        "--password",
        PASSWORD,
        "--events",
        str(options.events),
        "--single-events",
        str(options.single_events),
    ]


def parse_result(stdout: str, stderr: str, command: list[str]) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return result
    raise RuntimeError(f"{shlex.join(command[:6])} gave no result:\n{stderr[-3000:]}")


def run_worker(command: list[str]) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    return parse_result(done.stdout, done.stderr, command)


def stop_server_under(pythons: dict[str, str], server: Any, options: argparse.Namespace) -> Any:
    """Both drivers connected, SIGTERM the server, wait for it to exit, let them query."""
    processes = {}
    for driver, python in pythons.items():
        command = worker_command(python, driver, "stopped", server, options)
        processes[driver] = (
            command,
            subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
    for command, process in processes.values():
        assert process.stdout is not None
        if process.stdout.readline().strip() != "READY":
            _, stderr = process.communicate(timeout=30)
            raise RuntimeError(f"{shlex.join(command[:6])} did not connect:\n{stderr[-3000:]}")
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=60)
    results = {}
    for driver, (command, process) in processes.items():
        stdout, stderr = process.communicate("go\n", timeout=60)
        results[driver] = parse_result(stdout, stderr, command)
    return results


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


COLUMNS = (
    ("driver", 9, lambda r: r["driver"]),
    ("import ms", 10, lambda r: f"{r['import_ms']:.1f}"),
    ("RSS base MiB", 13, lambda r: mib(r["rss_base_kib"])),
    ("RSS conn MiB", 13, lambda r: mib(r["rss_connected_kib"])),
    ("peak MiB", 9, lambda r: mib(r["hwm_kib"])),
    ("grouped ev/s", 13, lambda r: f"{r['grouped']['events_per_s']:.0f}"),
    ("mean batch", 11, lambda r: f"{r['grouped']['mean_batch']:.1f}"),
    ("batch-1 ev/s", 13, lambda r: f"{r['single']['events_per_s']:.0f}"),
    ("rows ok", 8, lambda r: "yes" if r["rows_ok"] else "NO"),
)


def table_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["  ".join(f"{title:>{width}}" for title, width, _ in COLUMNS)]
    for row in rows:
        lines.append("  ".join(f"{cell(row):>{width}}" for _, width, cell in COLUMNS))
    return lines


def median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def med(get: Any) -> float:
        return statistics.median(get(r) for r in rows)

    return {
        "driver": rows[0]["driver"],
        "import_ms": med(lambda r: r["import_ms"]),
        "rss_base_kib": med(lambda r: r["rss_base_kib"]),
        "rss_connected_kib": med(lambda r: r["rss_connected_kib"]),
        "hwm_kib": med(lambda r: r["hwm_kib"]),
        "grouped": {
            "events_per_s": med(lambda r: r["grouped"]["events_per_s"]),
            "mean_batch": med(lambda r: r["grouped"]["mean_batch"]),
        },
        "single": {"events_per_s": med(lambda r: r["single"]["events_per_s"])},
        "rows_ok": all(r["rows_ok"] for r in rows),
    }


def print_errors(results: dict[str, dict[str, Any]]) -> None:
    print("\nerrors (exception class, args[0]):")
    for driver, result in results.items():
        print(f"  {driver}:")
        for case, found in result.items():
            code = "" if found["code"] is None else f" {found['code']}"
            extra = f" after {found['seconds']} s" if "seconds" in found else ""
            if "victims" in found:
                extra += f" ({found['victims']} victim)"
            verdict = "as expected" if found["ok"] else f"UNEXPECTED {found.get('message', '')}"
            print(f"    {case:<24} {found['class']}{code}{extra}: {verdict}")


def parent(options: argparse.Namespace) -> None:
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here.parent / "tests"))
    from mariadb import MariaDB

    began = time.perf_counter()
    print(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cpus, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory(prefix="mysql-drivers-") as scratch:
        pythons = {"asyncmy": options.asyncmy_python}
        status, why = usable(options.asyncmy_python, "asyncmy")
        if status != 0:
            sys.exit(f"asyncmy does not import under {options.asyncmy_python}: {why}")
        pythons["aiomysql"] = aiomysql_python(options.aiomysql_python, Path(scratch))
        server = MariaDB.start(Path(scratch) / "mariadb")
        try:
            version = server.sql("SELECT VERSION()").strip()
            print(f"server: MariaDB {version} (innodb_flush_log_at_trx_commit=1)")
            print(
                f"load: {options.events} events grouped (<= {MAX_BATCH} a batch),"
                f" {options.single_events} with batches of 1; {CONCURRENCY} concurrent"
                f" callbacks; {PAYLOAD_BYTES}-byte payloads, 1 in 20 a resent callback"
            )
            results: dict[str, list[dict[str, Any]]] = {d: [] for d in DRIVERS}
            for number in range(options.rounds):
                order = DRIVERS if number % 2 == 0 else DRIVERS[::-1]
                rows = []
                for driver in order:
                    command = worker_command(pythons[driver], driver, "ingest", server, options)
                    rows.append(run_worker(command))
                    results[driver].append(rows[-1])
                print(f"\nround {number + 1} ({', '.join(order)})")
                print("\n".join(table_lines(rows)), flush=True)
            print(f"\nmedians of {options.rounds} rounds")
            print("\n".join(table_lines([median_row(results[d]) for d in DRIVERS])))

            print("\nversions:")
            for driver in DRIVERS:
                last = results[driver][-1]
                print(
                    f"  {driver} {last['version']}, PyMySQL in its env {last['pymysql']}"
                    f"  ({last['python']})"
                )
            if usable(sys.executable, "aiomysql")[0] == 3:  # aiomysql with PyMySQL>=1.2
                command = worker_command(sys.executable, "aiomysql", "probe", server, options)
                try:
                    probe = run_worker(command)["probe"]
                except RuntimeError as error:
                    probe = str(error).splitlines()[-1]
                print(
                    f"  aiomysql {version_of('aiomysql')} with PyMySQL {version_of('PyMySQL')}"
                    f" ({sys.executable}): SELECT %s with a bytes parameter -> {probe}"
                )

            errors: dict[str, dict[str, Any]] = {}
            for driver in DRIVERS:
                command = worker_command(pythons[driver], driver, "errors", server, options)
                errors[driver] = run_worker(command)["errors"]
            for driver, result in stop_server_under(pythons, server, options).items():
                errors[driver].update(result["errors"])
            print_errors(errors)
        finally:
            server.stop()
    print(f"\ntotal time: {time.perf_counter() - began:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument(
        "--single-events",
        type=int,
        default=None,
        help="events for the batches-of-1 rate (default: a tenth of --events)",
    )
    parser.add_argument("--asyncmy-python", default=sys.executable)
    parser.add_argument("--aiomysql-python", help="a python with aiomysql and PyMySQL<1.2")
    # The worker's own options: one driver, one task, in a subprocess.
    parser.add_argument("--worker", choices=DRIVERS, help=argparse.SUPPRESS)
    parser.add_argument("--task", choices=sorted(TASKS), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    parser.add_argument("--user", help=argparse.SUPPRESS)
    parser.add_argument("--password", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.single_events is None:
        options.single_events = max(1, options.events // 10)
    if options.worker:
        result = asyncio.run(worker(options))
        print(RESULT_MARK + json.dumps(result), flush=True)
    else:
        parent(options)


if __name__ == "__main__":
    main()
