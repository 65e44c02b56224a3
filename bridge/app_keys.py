"""Typed keys for what the aiohttp application and its requests hold."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from .config import Config
from .delivery import DeliveryWorker
from .metrics import Metrics
from .rate_limit import StoreLimits
from .readiness import Readiness
from .reconcile import Reconciler
from .retention import RetentionJob
from .storage import Storage

__all__ = [
    "CONFIG",
    "HTTP_SESSION",
    "METRICS",
    "READINESS",
    "RECONCILER",
    "REQUEST_ID",
    "RETENTION",
    "STORAGE",
    "UNSIGNED_LIMITS",
    "WORKER",
    "LiveConfig",
]


class LiveConfig:
    """The config in force; SIGHUP replaces `current` (request handlers read it per request)."""

    def __init__(self, config: Config) -> None:
        self.current = config


CONFIG = web.AppKey("config", LiveConfig)
STORAGE = web.AppKey("storage", Storage)
METRICS = web.AppKey("metrics", Metrics)
READINESS = web.AppKey("readiness", Readiness)
WORKER = web.AppKey("worker", DeliveryWorker)
RECONCILER = web.AppKey("reconciler", Reconciler)
RETENTION = web.AppKey("retention", RetentionJob)
HTTP_SESSION = web.AppKey("http_session", aiohttp.ClientSession)
# Per-store caps on new unsigned callbacks; in memory, so a restart starts them afresh.
UNSIGNED_LIMITS = web.AppKey("unsigned_limits", StoreLimits)
REQUEST_ID = web.RequestKey("request_id", str)
