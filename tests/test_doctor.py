"""`doctor` against the simulated WooCommerce and Cryptum, set up right and wrongly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import main
from bridge.doctor import Finding, run_doctor
from bridge.simulators.cryptum import CryptumSimulator
from bridge.simulators.woocommerce import WooCommerceSimulator

from support import MAIN_STORE_ID, config_document, to_toml

KEY, SECRET = "ck_doctor_rw", "cs_doctor_rw"


@pytest.fixture
async def shop() -> AsyncIterator[WooCommerceSimulator]:
    async with WooCommerceSimulator() as simulator:
        simulator.add_key(KEY, SECRET)
        simulator.add_key("ck_doctor_ro", "cs_doctor_ro", permissions="read")
        yield simulator


@pytest.fixture
async def cryptum() -> AsyncIterator[CryptumSimulator]:
    async with CryptumSimulator() as simulator:
        simulator.add_store(MAIN_STORE_ID, api_key="api-key", webhook_secret="s")
        yield simulator


def write(
    tmp_path: Path, shop: WooCommerceSimulator, *, webhook_secret: str = "", **woocommerce: Any
) -> Path:
    document = config_document(tmp_path / "state" / "bridge.sqlite3")
    document["stores"] = [document["stores"][0]]
    if webhook_secret:
        document["stores"][0]["webhook_secret"] = webhook_secret
    document["stores"][0]["woocommerce"] = {
        "url": shop.base_url,
        "consumer_key": KEY,
        "consumer_secret": SECRET,
    } | woocommerce
    path = tmp_path / "config.toml"
    path.write_text(to_toml(document))
    return path


async def doctor(path: Path) -> tuple[int, list[Finding]]:
    # doctor runs its own event loop; the simulators keep serving in this one.
    return await asyncio.to_thread(run_doctor, path)


def problems(findings: list[Finding]) -> list[str]:
    return [f"{f.message} / {f.fix}" for f in findings if not f.ok]


async def test_a_good_install_has_no_problem(tmp_path: Path, shop: WooCommerceSimulator) -> None:
    code, findings = await doctor(write(tmp_path, shop))
    assert problems(findings) == []
    assert code == 0
    subjects = " ".join(f.subject for f in findings)
    assert "database" in subjects and "WooCommerce" in subjects and "listen" in subjects
    assert not any(f.warning for f in findings)


async def test_a_short_webhook_secret_is_a_warning_that_fails_nothing(
    tmp_path: Path, shop: WooCommerceSimulator
) -> None:
    code, findings = await doctor(write(tmp_path, shop, webhook_secret="short-Qx9"))
    assert problems(findings) == []
    assert code == 0
    (warning,) = [f for f in findings if f.warning]
    assert warning.ok
    assert warning.render() == (
        "WARNING  config: stores[0].webhook_secret: shorter than 16 characters; "
        "use a long random secret"
    )
    assert "Qx9" not in "\n".join(f.render() for f in findings)


async def test_the_doctor_command_counts_warnings_in_its_summary(
    tmp_path: Path, shop: WooCommerceSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(tmp_path, shop, webhook_secret="short-Qx9")
    code = await asyncio.to_thread(main, ["doctor", "--config", str(config)])
    assert code == 0
    assert capsys.readouterr().out.rstrip().endswith("No problems found, 1 warning(s).")


@pytest.mark.parametrize(
    ("setting", "message", "fix"),
    [
        ({"url_host": "localhost"}, "reading orders fails", "home URL"),
        (
            {"consumer_key": "ck_doctor_ro", "consumer_secret": "cs_doctor_ro"},
            "updating orders fails",
            "read-only",
        ),
        ({"auth": "basic"}, "reading orders fails", "Basic auth"),
        ({"consumer_secret": "cs_wrong"}, "reading orders fails", "home URL"),
        ({"url": "http://127.0.0.1:9"}, "unreachable", "home URL"),
    ],
    ids=["home-url-mismatch", "read-only-key", "basic-over-http", "wrong-secret", "down"],
)
async def test_each_misconfiguration_is_named_with_its_fix(
    tmp_path: Path, shop: WooCommerceSimulator, setting: dict[str, str], message: str, fix: str
) -> None:
    settings = dict(setting)
    if "url_host" in settings:
        assert shop.base_url is not None
        settings = {"url": shop.base_url.replace("127.0.0.1", settings.pop("url_host"))}
    code, findings = await doctor(write(tmp_path, shop, **settings))
    assert code == 1
    (problem,) = problems(findings)
    assert message in problem and fix in problem


async def test_clock_skew_is_reported(tmp_path: Path) -> None:
    async with WooCommerceSimulator(clock=lambda: __import__("time").time() + 3600) as skewed:
        skewed.add_key(KEY, SECRET)
        code, findings = await doctor(write(tmp_path, skewed))
    assert code == 1
    assert any("clock" in problem for problem in problems(findings))


async def test_cryptum_api_key_is_checked(
    tmp_path: Path, shop: WooCommerceSimulator, cryptum: CryptumSimulator
) -> None:
    path = write(tmp_path, shop)
    text = path.read_text().replace(
        "[[stores]]\n",
        f'[[stores]]\ncryptum_api_key = "api-key"\ncryptum_api_url = "{cryptum.base_url}"\n',
    )
    path.write_text(text)
    code, findings = await doctor(path)
    assert code == 0, problems(findings)
    path.write_text(text.replace('cryptum_api_key = "api-key"', 'cryptum_api_key = "wrong"'))
    code, findings = await doctor(path)
    assert code == 1
    assert any("cryptum_api_key" in problem for problem in problems(findings))


async def test_a_bad_config_is_reported_by_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[[stores]]\nname = "main"\n')
    code, findings = await doctor(path)
    assert code == 1
    assert any("stores[0].cryptum_store_id" in f.message for f in findings)


async def test_a_loose_database_mode_is_reported(
    tmp_path: Path, shop: WooCommerceSimulator
) -> None:
    path = write(tmp_path, shop)
    database = tmp_path / "state" / "bridge.sqlite3"
    database.parent.mkdir()
    from bridge.storage import Database

    opened = await Database.open(database)
    await opened.close()
    database.chmod(0o644)
    code, findings = await doctor(path)
    assert code == 1
    assert any("chmod 600" in problem for problem in problems(findings))
