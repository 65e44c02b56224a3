"""The sd_notify protocol: tell systemd we are ready, alive, or stopping.

systemd passes `NOTIFY_SOCKET` (a path, or an abstract name starting with "@")
to `Type=notify` services; each message is one datagram of `KEY=value` lines.
Without the variable (not under systemd) every call does nothing.
"""

from __future__ import annotations

import os
import socket

__all__ = ["notify", "watchdog_interval"]


def notify(*lines: str) -> bool:
    """Send `lines` (e.g. "READY=1", "STATUS=…") as one message; False if not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # the abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto("\n".join(lines).encode(), address)
    return True


def watchdog_interval() -> float | None:
    """How often to send WATCHDOG=1 (half systemd's timeout), or None when no watchdog is set."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None  # not set, or meant for another process
    try:
        timeout = int(usec) / 1_000_000
    except ValueError:
        return None
    return timeout / 2 if timeout > 0 else None
