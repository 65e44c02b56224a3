"""Start-to-ready time and memory of `cryptum-bridge serve`.

    python bench/footprint.py [--starts 5] [--requests 20000]

Start to ready: from exec to systemd's READY=1 on a NOTIFY_SOCKET (sent once
the listener is bound and the database open), median of several starts.
RSS: VmRSS from /proc when idle after start, and the peak (VmHWM) after a
load of unique signed callbacks at concurrency 64, with deliveries running
against a simulated shop.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ingest import bridge_config, free_port, run_load, wait_listening


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def start_bridge(config: Path, notify_path: Path) -> tuple[subprocess.Popen[bytes], float]:
    """Start serve and wait for READY=1; returns the process and the seconds it took."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(notify_path))
        listener.settimeout(30)
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            env={**os.environ, "NOTIFY_SOCKET": str(notify_path)},
        )
        while b"READY=1" not in listener.recv(4096):
            pass
        elapsed = time.perf_counter() - started
    notify_path.unlink()
    return process, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20000)
    arguments = parser.parse_args()
    here = Path(__file__).resolve().parent
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cpus, Python {platform.python_version()}"
    )

    shop_port = free_port()
    shop = subprocess.Popen(
        [sys.executable, str(here / "shop_server.py"), str(shop_port), "1000"],
        stdout=subprocess.DEVNULL,
    )
    wait_listening(shop_port)
    try:
        with tempfile.TemporaryDirectory() as directory:
            times = []
            for _ in range(arguments.starts):
                port = free_port()
                config = bridge_config(Path(directory), port, 256, f"http://127.0.0.1:{shop_port}")
                process, elapsed = start_bridge(config, Path(directory) / "notify")
                times.append(elapsed)
                process.terminate()
                process.wait(timeout=30)
            print(
                f"start to ready: median {statistics.median(times) * 1000:.0f} ms "
                f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}, {len(times)} starts)"
            )

            port = free_port()
            config = bridge_config(Path(directory), port, 256, f"http://127.0.0.1:{shop_port}")
            process, _ = start_bridge(config, Path(directory) / "notify")
            try:
                time.sleep(2)
                idle = rss_kib(process.pid)
                figures = run_load(
                    f"http://127.0.0.1:{port}/callbacks/cryptum", arguments.requests, 64
                )
                peak = rss_kib(process.pid, "VmHWM")
                after = rss_kib(process.pid)
            finally:
                process.terminate()
                process.wait(timeout=30)
            print(f"idle RSS: {idle / 1024:.1f} MiB")
            print(
                f"RSS under load ({arguments.requests} callbacks at concurrency 64, "
                f"{figures['per_second']:.0f}/s): peak {peak / 1024:.1f} MiB, "
                f"after {after / 1024:.1f} MiB"
            )
    finally:
        shop.terminate()
        shop.wait(timeout=30)


if __name__ == "__main__":
    main()
