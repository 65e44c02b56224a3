"""`cryptum-bridge send-test`: a signed callback, as Cryptum would send it, to a running bridge.

It lets an admin test a real install end to end without paying. Stores with
an API key confirm every callback with Cryptum, so for them give the id of a
real order (`--cryptum-order`, e.g. from Cryptum's test environment): a made-up
one is refused at confirmation, and the delivery says so.

The callback is real to the bridge: a delivered `confirmed`, `on-hold`,
`failed` or `cancelled` changes the shop's order (paid, held, failed,
cancelled and restocked). So the command first says what it will change
(`plan`), and sends only when told to (`--yes`).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import aiohttp

from .config import Config, StoreConfig
from .signature import sign

__all__ = ["STATUSES", "bridge_url", "build_test_callback", "plan", "send_test_callback"]

# The statuses Cryptum sends, as the status rules know them.
STATUSES = ("pending", "on-hold", "confirmed", "failed", "cancelled")


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


def _effect(store: StoreConfig, order: str, status: str) -> str | None:
    """What delivering `status` does to the order under the store's rules; None: nothing."""
    rules = store.rules
    if status == "confirmed" and rules.confirmed == "pay":
        return (
            f"marks WooCommerce order {order} paid if it is pending, on hold, failed or a "
            "draft: WooCommerce reduces stock and e-mails the customer"
        )
    if status == "on-hold" and rules.on_hold == "on-hold":
        return f"puts WooCommerce order {order} on hold if it is pending"
    if status == "failed" and rules.failed != "ignore":
        restock = "; WooCommerce restocks its items" if rules.failed == "cancelled" else ""
        return (
            f"sets WooCommerce order {order} to {rules.failed} if it is pending or on hold{restock}"
        )
    if status == "cancelled" and rules.cancelled == "cancelled":
        return (
            f"cancels WooCommerce order {order} if it is pending, on hold or failed: "
            "WooCommerce restocks its items"
        )
    return None


def plan(
    config: Config,
    store: StoreConfig,
    *,
    woo_order_id: str,
    status: str,
    cryptum_order_id: str | None = None,
    url: str | None = None,
) -> list[str]:
    """What send-test is about to do, in lines for the admin to read before saying --yes."""
    effect = _effect(store, woo_order_id, status)
    nothing = "none on the order: the bridge records the callback and changes nothing"
    lines = [
        f"send-test will post a signed {status!r} callback to {url or bridge_url(config, store)}",
        f"  store:          {store.name} (WooCommerce {store.woocommerce.url})",
        f"  order:          WooCommerce order {woo_order_id}",
        f"  status:         {status}",
        f"  Cryptum order:  {cryptum_order_id or 'a made-up id (send-test-...)'}",
        f"  effect:         {effect or nothing}",
    ]
    if effect is not None:
        lines.append(
            f"This really changes WooCommerce order {woo_order_id} in that shop: use a test order."
        )
    if store.cryptum_api_key is not None and cryptum_order_id is None:
        lines.append(
            "The store confirms callbacks with Cryptum's API: a made-up Cryptum order is "
            "refused there and nothing changes (give --cryptum-order ID of a real one)."
        )
    return lines


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
