"""SIGHUP: re-read the config and apply what can change without a restart.

Stores, their secrets and credentials, the delivery, reconciliation and
retention-free settings and the log level change in place; requests in
flight finish under the config they started with, and none is refused
meanwhile. `[server]` and `[storage]` need a restart: a reload keeps them and
says so. An invalid config is refused whole, and the running one stays.
"""

from __future__ import annotations

from pathlib import Path

import structlog
from aiohttp import web

from .app import build_clients
from .app_keys import CONFIG, HTTP_SESSION, METRICS, RECONCILER, UNSIGNED_LIMITS, WORKER
from .config import Config, ConfigError, load_config
from .log_setup import set_level

__all__ = ["RESTART_SECTIONS", "reload_config"]

log = structlog.get_logger("bridge.server")

RESTART_SECTIONS = ("server", "storage")


def apply_config(app: web.Application, new: Config) -> list[str]:
    """Put `new` in force; returns the sections that changed but need a restart."""
    live = app[CONFIG]
    old = live.current
    needs_restart = [s for s in RESTART_SECTIONS if getattr(old, s) != getattr(new, s)]
    # What needs a restart keeps its running value, so the app stays consistent.
    effective = new.model_copy(
        update={section: getattr(old, section) for section in RESTART_SECTIONS}
    )
    clients, cryptum_clients = build_clients(effective, app[HTTP_SESSION])
    app[WORKER].reconfigure(effective, clients, cryptum_clients)
    app[RECONCILER].reconfigure(effective, cryptum_clients)
    app[METRICS].set_stores([store.name for store in effective.stores])
    app[UNSIGNED_LIMITS].configure(
        {store.name: store.unsigned_callbacks_per_minute for store in effective.stores}
    )
    live.current = effective
    return needs_restart


def reload_config(app: web.Application, config_path: Path) -> bool:
    """Re-read `config_path` and apply it; False (and the old config kept) if it is invalid."""
    try:
        new = load_config(config_path)
    except ConfigError as error:
        log.error("server.reload_failed", problems=error.problems)
        return False
    needs_restart = apply_config(app, new)
    log.info(
        "server.reloaded",
        stores=[store.name for store in new.stores],
        restart_needed_for=needs_restart or None,
        log_level=new.logging.level,
    )
    set_level(new.logging.level)  # after the line above, which a higher level would hide
    return True
