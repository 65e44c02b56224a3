"""`cryptum-bridge send-test`: a signed callback, as Cryptum would send it, to a running bridge.

It lets an admin test a real install end to end without paying. Stores with
an API key confirm every callback with Cryptum, so for them give the id of a
real order (`--cryptum-order`, e.g. from Cryptum's test environment): a made-up
one is refused at confirmation, and the delivery says so.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import aiohttp

from .config import Config, StoreConfig
from .signature import sign

__all__ = ["bridge_url", "build_test_callback", "send_test_callback"]


def build_test_callback(
    store: StoreConfig, *, woo_order_id: str, status: str, cryptum_order_id: str | None = None
) -> bytes:
    """The body of a test callback; a fresh Cryptum order id unless one is given."""
    body: dict[str, Any] = {
        "message": "Test callback sent by cryptum-bridge send-test",
        "status": status,
        "orderId": cryptum_order_id or f"send-test-{uuid.uuid4()}",
        "ecommerceOrderId": woo_order_id,
        "storeId": store.cryptum_store_id,
        "transactions": [],
        "updatedProducts": None,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def bridge_url(config: Config, store: StoreConfig) -> str:
    """Where the configured daemon listens for this store's callbacks."""
    address = config.server.address
    path = f"/callbacks/cryptum/{store.name}"
    if address.unix_path is not None:
        return f"http://localhost{path}"  # the host is ignored over the unix socket
    host = address.host or "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{address.port}{path}"


async def send_test_callback(
    config: Config, store: StoreConfig, body: bytes, *, url: str | None = None
) -> tuple[int, Any]:
    """POST `body`, signed with the store's secret; returns the status and the decoded answer."""
    headers = {"Content-Type": "application/json"}
    if store.webhook_secret is not None:
        headers["X-Webhook-Signature"] = sign(body, store.webhook_secret.get_secret_value())
    unix_path = config.server.address.unix_path if url is None else None
    connector = aiohttp.UnixConnector(path=unix_path) if unix_path else None
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(
            url or bridge_url(config, store),
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=30),
        ) as response,
    ):
        try:
            answer = await response.json(content_type=None)
        except ValueError:
            answer = (await response.text())[:500]
        return response.status, answer
