"""Run `cryptum-bridge serve` as a real process for tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from support import SESSION_LOGS


class Daemon:
    """A `cryptum-bridge serve` subprocess; its output joins the session's logs."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "serve", "--config", str(config_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = self._wait_until_started()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.lines) if line.startswith("{")]

    def _wait_until_started(self, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events():
                if event["event"] == "server.started":
                    return f"http://{event['listen'][0]}"
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.finish()
        raise RuntimeError("daemon did not start:\n" + "".join(self.lines))

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def finish(self, timeout: float = 15.0) -> int:
        """Wait for the process to exit (killing it if it will not) and keep its logs."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(timeout=5)
        SESSION_LOGS.add("".join(self.lines))
        return code

    def stop(self) -> int:
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
        return self.finish()
