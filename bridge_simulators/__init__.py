"""Simulated peers of the bridge, served over real sockets for tests, the demo and benchmarks."""

from __future__ import annotations

from bridge_simulators.cryptum import CryptumSimulator, RecordedApiRequest
from bridge_simulators.cryptum_callbacks import CallbackDelivery
from bridge_simulators.cryptum_orders import SimCryptumOrder, SimCryptumStore
from bridge_simulators.tls import write_self_signed_certificate
from bridge_simulators.woocommerce import (
    RECORDED_LATENCY_BY_METHOD,
    RecordedRequest,
    WooCommerceSimulator,
)
from bridge_simulators.woocommerce_shop import SimLineItem, SimNote, SimOrder, SimProduct

__all__ = [
    "RECORDED_LATENCY_BY_METHOD",
    "CallbackDelivery",
    "CryptumSimulator",
    "RecordedApiRequest",
    "RecordedRequest",
    "SimCryptumOrder",
    "SimCryptumStore",
    "SimLineItem",
    "SimNote",
    "SimOrder",
    "SimProduct",
    "WooCommerceSimulator",
    "write_self_signed_certificate",
]
