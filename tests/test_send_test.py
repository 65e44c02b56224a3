"""send-test: the test callback, the default URL, the plan it shows, and --yes."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bridge.cli import main
from bridge.config import parse_config
from bridge.send_test import STATUSES, bridge_url, build_test_callback, plan

from support import MAIN_STORE_ID, config_document, write_config


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


# The command: it says what it will change, and sends only with --yes


@dataclass
class Receiver:
    """A stand-in for a running bridge that records what it is sent."""

    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    received: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(json.loads(await request.read()))
        return web.json_response({"status": "accepted", "event_id": 7})

    app = web.Application()
    app.router.add_post("/callbacks/cryptum/main", handle)
    server = await aiohttp_server(app)
    return Receiver(str(server.make_url("/callbacks/cryptum/main")), received)


async def send_test(*arguments: str) -> tuple[int, str, str]:
    """Run `cryptum-bridge send-test` in-process (it runs its own event loop)."""
    out, err = io.StringIO(), io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return main(["send-test", *arguments])

    code = await asyncio.to_thread(run)
    return code, out.getvalue(), err.getvalue()


async def test_without_yes_the_plan_is_shown_and_nothing_is_sent(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = write_config(tmp_path)
    code, out, err = await send_test(
        "--config", str(config), "--store", "main", "--order", "12", "--status", "confirmed",
        "--url", receiver.url,
    )  # fmt: skip
    assert code == 1
    assert receiver.bodies == []
    assert err.strip() == "send-test: nothing sent; add --yes to send it"
    assert out.splitlines() == [
        f"send-test will post a signed 'confirmed' callback to {receiver.url}",
        "  store:          main (WooCommerce http://127.0.0.1:9)",
        "  order:          WooCommerce order 12",
        "  status:         confirmed",
        "  Cryptum order:  a made-up id (send-test-...)",
        "  effect:         marks WooCommerce order 12 paid if it is pending, on hold, failed or "
        "a draft: WooCommerce reduces stock and e-mails the customer",
        "This really changes WooCommerce order 12 in that shop: use a test order.",
    ]


async def test_with_yes_it_sends_and_says_how_to_follow_it(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = write_config(tmp_path)
    code, out, err = await send_test(
        "--store", "main", "--order", "12", "--status", "cancelled", "--url", receiver.url,
        "--yes", "--config", str(config),
    )  # fmt: skip
    assert (code, err) == (0, "")
    (body,) = receiver.bodies
    assert (body["ecommerceOrderId"], body["status"]) == ("12", "cancelled")
    assert "cancels WooCommerce order 12 if it is pending, on hold or failed" in out
    assert out.splitlines()[-1] == (
        f"Follow it with: cryptum-bridge events show 7 --config {config}"
    )


@pytest.mark.parametrize(
    ("status", "effect", "really"),
    [
        ("pending", "none on the order", False),
        ("on-hold", "puts WooCommerce order 12 on hold if it is pending", True),
        ("failed", "sets WooCommerce order 12 to failed if it is pending or on hold", True),
        ("cancelled", "WooCommerce restocks its items", True),
        ("confirmed", "marks WooCommerce order 12 paid", True),
    ],
)
def test_the_plan_names_what_each_status_changes(
    tmp_path: Path, status: str, effect: str, really: bool
) -> None:
    config = parse_config(config_document(tmp_path / "db"), base_dir=tmp_path)
    lines = plan(config, config.stores[0], woo_order_id="12", status=status)
    assert any(line.startswith("  effect:") and effect in line for line in lines)
    assert any("This really changes WooCommerce order 12" in line for line in lines) is really


def test_the_plan_follows_the_stores_rules(tmp_path: Path) -> None:
    document = config_document(tmp_path / "db")
    document["stores"][0]["rules"] = {"confirmed": "ignore", "failed": "cancelled"}
    config = parse_config(document, base_dir=tmp_path)
    (store,) = config.stores[:1]
    ignored = plan(config, store, woo_order_id="3", status="confirmed")
    assert "  effect:         none on the order" in "\n".join(ignored)
    failed = "\n".join(plan(config, store, woo_order_id="3", status="failed"))
    assert "sets WooCommerce order 3 to cancelled" in failed and "restocks" in failed


def test_the_plan_warns_that_an_api_key_refuses_a_made_up_order(tmp_path: Path) -> None:
    document = config_document(tmp_path / "db")
    document["stores"][0]["cryptum_api_key"] = "api-key-for-plan"
    config = parse_config(document, base_dir=tmp_path)
    store = config.stores[0]
    made_up = plan(config, store, woo_order_id="3", status="confirmed")
    assert "a made-up Cryptum order is refused there" in made_up[-1]
    real = plan(config, store, woo_order_id="3", status="confirmed", cryptum_order_id="c-1")
    assert "  Cryptum order:  c-1" in real and "refused there" not in "\n".join(real)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--order", "12", "--status", "paid"], "argument --status: invalid choice: 'paid'"),
        (["--order", "12", "--status", "Confirmed"], "invalid choice: 'Confirmed'"),
        (["--status", "confirmed"], "the following arguments are required: --order"),
    ],
    ids=["unknown-status", "capitalised-status", "no-order"],
)
def test_only_documented_statuses_and_a_given_order_are_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    config = write_config(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["send-test", "--config", str(config), "--store", "main", *arguments, "--yes"])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_the_documented_statuses() -> None:
    assert STATUSES == ("pending", "on-hold", "confirmed", "failed", "cancelled")


@pytest.mark.slow
async def test_with_yes_a_real_order_is_changed_end_to_end(tmp_path: Path) -> None:
    from bridge_simulators.woocommerce import WooCommerceSimulator

    from daemon import Bridge, bridge_notes, wait_until

    async with WooCommerceSimulator() as shop:
        shop.add_key("ck_send_test_key", "cs_send_test_secret")
        shop.seed_fixture_shop()
        bridge = Bridge(tmp_path, shop, key="ck_send_test_key", secret="cs_send_test_secret")
        bridge.start()
        try:
            arguments = ["--config", str(bridge.config_path), "--store", "main", "--order", "12"]
            arguments += ["--status", "confirmed", "--url", f"{bridge.url}/callbacks/cryptum/main"]
            code, _, err = await send_test(*arguments)
            assert code == 1 and "add --yes" in err
            assert shop.orders[12].status == "pending"  # nothing was sent

            code, out, err = await send_test(*arguments, "--yes")
            assert code == 0, err
            assert 'answer: 200 {"status": "accepted"' in out
            await wait_until(lambda: shop.orders[12].status == "processing")
            assert len(bridge_notes(shop, 12)) == 1
        finally:
            assert bridge.stop() == 0
