"""send-test's pure parts: the test callback and the default URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.config import parse_config
from bridge.send_test import bridge_url, build_test_callback

from support import MAIN_STORE_ID, config_document


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("127.0.0.1:8787", "http://127.0.0.1:8787/callbacks/cryptum/main"),
        ("0.0.0.0:9000", "http://127.0.0.1:9000/callbacks/cryptum/main"),
        ("[::1]:9000", "http://[::1]:9000/callbacks/cryptum/main"),
        ("unix:/run/cryptum-bridge/sock", "http://localhost/callbacks/cryptum/main"),
    ],
)
def test_default_url_follows_the_listen_address(tmp_path: Path, listen: str, url: str) -> None:
    config = parse_config(
        config_document(tmp_path / "db", server={"listen": listen}), base_dir=tmp_path
    )
    assert bridge_url(config, config.stores[0]) == url


def test_the_callback_is_shaped_like_cryptums(tmp_path: Path) -> None:
    config = parse_config(config_document(tmp_path / "db"), base_dir=tmp_path)
    body = json.loads(build_test_callback(config.stores[0], woo_order_id="12", status="confirmed"))
    assert body["storeId"] == MAIN_STORE_ID
    assert (body["ecommerceOrderId"], body["status"]) == ("12", "confirmed")
    assert body["orderId"].startswith("send-test-")
    given = json.loads(
        build_test_callback(
            config.stores[0], woo_order_id="12", status="failed", cryptum_order_id="abc"
        )
    )
    assert given["orderId"] == "abc"
