"""Prometheus metrics, one registry per application.

Labels carry only configured store names and fixed outcome words, never
values from a request, so no client can grow the number of series.
Queue figures (depth, oldest pending, dead letters) are read from the
database when `/metrics` is scraped.
"""

from __future__ import annotations

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

from . import __version__

__all__ = ["CONTENT_TYPE", "UNKNOWN_STORE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
# The label for callbacks that name no configured store.
UNKNOWN_STORE = "-"


class Metrics:
    """The bridge's metrics; `render()` gives the Prometheus text format."""

    def __init__(self, store_names: list[str]) -> None:
        self.registry = CollectorRegistry()
        self._store_names = frozenset(store_names)
        self._callback_counters: dict[tuple[str, str], Counter] = {}
        self.callbacks = Counter(
            "cryptum_bridge_callbacks",
            "Callbacks received, by store and outcome "
            "(accepted, duplicate, invalid_payload, invalid_signature, unknown_store, "
            "payload_too_large, request_timeout, rate_limited, unavailable).",
            ["store", "outcome"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "cryptum_bridge_deliveries",
            "Delivery attempts that ended, by store and outcome "
            "(done, skipped, dead, retry, config_error).",
            ["store", "outcome"],
            registry=self.registry,
        )
        self.attempt_seconds = Histogram(
            "cryptum_bridge_delivery_attempt_seconds",
            "Duration of one delivery attempt, all its requests included.",
            ["store"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "cryptum_bridge_upstream_errors",
            "Failed calls to WooCommerce or Cryptum, by service and class "
            "(transient, order_not_found, rejected, config).",
            ["service", "kind"],
            registry=self.registry,
        )
        self.outbox_depth = Gauge(
            "cryptum_bridge_outbox_depth",
            "Deliveries waiting to be delivered.",
            registry=self.registry,
        )
        self.oldest_pending_age = Gauge(
            "cryptum_bridge_oldest_pending_age_seconds",
            "Age of the oldest waiting delivery (0 when none waits).",
            registry=self.registry,
        )
        self.dead_letters = Gauge(
            "cryptum_bridge_dead_letters",
            "Deliveries on the dead-letter list.",
            registry=self.registry,
        )
        Info("cryptum_bridge_build", "The running version.", registry=self.registry).info(
            {"version": __version__}
        )

    def count_callback(self, store: str, outcome: str) -> None:
        """One more callback of `store` with `outcome` (a configured name and a fixed word)."""
        counter = self._callback_counters.get((store, outcome))
        if counter is None:
            # Looking a labelled child up takes a lock and several calls; a
            # callback counts once, so children are kept (a few stores times
            # a few outcomes at most).
            counter = self._callback_counters[store, outcome] = self.callbacks.labels(
                store, outcome
            )
        counter.inc()

    def set_stores(self, store_names: list[str]) -> None:
        self._store_names = frozenset(store_names)

    def store_label(self, name: str | None) -> str:
        return name if name in self._store_names else UNKNOWN_STORE

    def set_queue(self, *, pending: int, oldest_pending: float | None, dead: int) -> None:
        self.outbox_depth.set(pending)
        age = 0.0 if oldest_pending is None else max(0.0, time.time() - oldest_pending)
        self.oldest_pending_age.set(age)
        self.dead_letters.set(dead)

    def render(self) -> bytes:
        return generate_latest(self.registry)
