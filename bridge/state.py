"""Typed keys for what the aiohttp application and its requests hold."""

from __future__ import annotations

from aiohttp import web

from .config import Config
from .delivery import DeliveryWorker
from .metrics import Metrics
from .readiness import Readiness
from .reconcile import Reconciler
from .storage import Database

__all__ = ["CONFIG", "DATABASE", "METRICS", "READINESS", "RECONCILER", "REQUEST_ID", "WORKER"]

CONFIG = web.AppKey("config", Config)
DATABASE = web.AppKey("database", Database)
METRICS = web.AppKey("metrics", Metrics)
READINESS = web.AppKey("readiness", Readiness)
WORKER = web.AppKey("worker", DeliveryWorker)
RECONCILER = web.AppKey("reconciler", Reconciler)
REQUEST_ID = web.RequestKey("request_id", str)
