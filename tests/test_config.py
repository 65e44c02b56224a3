"""Config loading: secret sources, defaults, and errors that name the key."""

from __future__ import annotations

import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from bridge.config import MIN_WEBHOOK_SECRET_LENGTH, Config, ConfigError, load_config, parse_config

from support import config_document

REPO = Path(__file__).resolve().parent.parent


def parse(document: dict[str, Any], base_dir: Path) -> Config:
    return parse_config(document, base_dir=base_dir)


def problems_of(document: dict[str, Any], base_dir: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(document, base_dir)
    return caught.value.problems


# What an owner puts in place of the example's placeholders.
FILLED_IN = {
    'webhook_secret = "whsec_change_me"': 'webhook_secret = "whsec_a_long_random_secret_91c3"',
    'woocommerce.consumer_key = "ck_change_me"': 'woocommerce.consumer_key = "ck_real_key_4d2a"',
    'woocommerce.consumer_secret = "cs_change_me"': (
        'woocommerce.consumer_secret = "cs_real_secret_8b1f"'
    ),
}


def filled_in_example(directory: Path) -> Path:
    """config.example.toml with its placeholders replaced, as an owner would."""
    text = (REPO / "config.example.toml").read_text()
    for placeholder, value in FILLED_IN.items():
        assert placeholder in text, placeholder
        text = text.replace(placeholder, value)
    path = directory / "config.toml"
    path.write_text(text)
    return path


def test_the_example_config_is_valid_and_shows_every_default(tmp_path: Path) -> None:
    filled_in = filled_in_example(tmp_path)
    config = load_config(filled_in)
    example = tomllib.loads(filled_in.read_text())
    defaults = Config.model_validate({"stores": example["stores"]})
    for section in ("server", "storage", "logging", "delivery", "reconcile"):
        assert getattr(config, section) == getattr(defaults, section), section
        text = (REPO / "config.example.toml").read_text()
        for key, field in type(getattr(config, section)).model_fields.items():
            if field.default is None:  # TOML has no null: shown commented out
                assert f"# {key} =" in text, f"{section}.{key} is not documented"
            else:
                assert key in example[section], f"{section}.{key} is not documented"


def test_secret_from_a_file_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "hook").write_text("from-file-secret\n")
    document = config_document(tmp_path / "db")
    store = document["stores"][0]
    del store["webhook_secret"]
    store["webhook_secret_file"] = "hook"
    config = parse(document, tmp_path)
    assert config.stores[0].webhook_secret.get_secret_value() == "from-file-secret"


def test_secret_file_in_the_systemd_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "woo_secret").write_text("cs_from_credential")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    document = config_document(tmp_path / "db")
    woocommerce = document["stores"][0]["woocommerce"]
    del woocommerce["consumer_secret"]
    woocommerce["consumer_secret_file"] = "woo_secret"
    config = parse(document, tmp_path / "elsewhere")
    assert config.stores[0].woocommerce.consumer_secret.get_secret_value() == "cs_from_credential"


def test_secret_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "from-env")
    document = config_document(tmp_path / "db")
    document["stores"][0]["webhook_secret"] = "env:HOOK_SECRET"
    assert parse(document, tmp_path).stores[0].webhook_secret.get_secret_value() == "from-env"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["stores"][0].update(webhook_secret="env:UNSET_VARIABLE_X"),
            "stores[0].webhook_secret: environment variable UNSET_VARIABLE_X is not set",
        ),
        (
            lambda d: d["stores"][0].update(webhook_secret_file="missing-file"),
            "stores[0].webhook_secret_file: cannot read",
        ),
        (
            lambda d: d["stores"][1].pop("webhook_secret"),
            "stores[1]: webhook_secret (or webhook_secret_file) is required",
        ),
        (
            lambda d: d["stores"][0]["woocommerce"].update(url="shop.example.com"),
            "stores[0].woocommerce.url: must be an http:// or https:// URL",
        ),
        (
            lambda d: d["stores"][0]["woocommerce"].update(auth="digest"),
            "stores[0].woocommerce.auth: Input should be 'auto', 'basic' or 'oauth1'",
        ),
        (
            lambda d: d["stores"][0].update(name="Main Store"),
            "stores[0].name: use 1-64 lower-case letters",
        ),
        (
            lambda d: d["stores"][1].update(cryptum_store_id=d["stores"][0]["cryptum_store_id"]),
            "stores: stores[1] has the same cryptum_store_id as stores[0]",
        ),
        (
            lambda d: d["stores"][0].update(webhok_secret="typo"),
            "stores[0].webhok_secret: Extra inputs are not permitted",
        ),
        (
            lambda d: d["server"].update(listen="8787"),
            'server.listen: must be "host:port" or "unix:/path/to/socket"',
        ),
        (
            lambda d: d["server"].update(max_body_bytes=10),
            "server.max_body_bytes: Input should be greater than or equal to 1024",
        ),
        (
            lambda d: d.update(delivery={"backoff_initial_seconds": 10, "backoff_max_seconds": 5}),
            "delivery: backoff_initial_seconds must not exceed backoff_max_seconds",
        ),
        (lambda d: d.update(stores=[]), "stores: List should have at least 1 item"),
        (
            lambda d: d["stores"][0].update(unsigned_callbacks_per_minute=0),
            "stores[0].unsigned_callbacks_per_minute: Input should be greater than or equal to 1",
        ),
    ],
)
def test_each_problem_names_its_key(tmp_path: Path, change: Any, expected: str) -> None:
    document = config_document(tmp_path / "db")
    change(document)
    problems = problems_of(document, tmp_path)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_errors_never_echo_a_secret(tmp_path: Path) -> None:
    document = config_document(tmp_path / "db")
    document["stores"][0]["webhook_secret"] = 12345678  # wrong type: a secret typed as a number
    document["stores"][0]["woocommerce"]["url"] = "not-a-url-SECRETISH"
    problems = "\n".join(problems_of(document, tmp_path))
    assert "12345678" not in problems
    assert "SECRETISH" not in problems


def test_storage_path_defaults_to_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = config_document(tmp_path / "db")
    del document["storage"]
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path}/state:{tmp_path}/other")
    assert parse(document, tmp_path).storage.database_path == tmp_path / "state" / "bridge.sqlite3"


def test_storage_path_defaults_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = config_document(tmp_path / "db")
    del document["storage"]
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.chdir(tmp_path)
    assert parse(document, tmp_path).storage.database_path == tmp_path / "bridge.sqlite3"


@pytest.mark.parametrize(
    ("listen", "host", "port", "unix_path"),
    [
        ("127.0.0.1:8787", "127.0.0.1", 8787, None),
        ("[::1]:9000", "::1", 9000, None),
        ("unix:/run/cryptum-bridge/sock", None, None, "/run/cryptum-bridge/sock"),
    ],
)
def test_listen_addresses(
    tmp_path: Path, listen: str, host: str | None, port: int | None, unix_path: str | None
) -> None:
    document = config_document(tmp_path / "db", server={"listen": listen})
    address = parse(document, tmp_path).server.address
    assert (address.host, address.port, address.unix_path) == (host, port, unix_path)


def test_unreadable_or_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\nlisten=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_the_example_config_mentions_every_store_key() -> None:
    from bridge.config import RulesConfig, StoreConfig, WooCommerceConfig

    text = (REPO / "config.example.toml").read_text()
    for prefix, model in (
        ("", StoreConfig),
        ("woocommerce.", WooCommerceConfig),
        ("rules.", RulesConfig),
    ):
        for key in model.model_fields:
            if key not in ("woocommerce", "rules"):
                assert f"{prefix}{key} =" in text, f"stores.{prefix}{key} is not documented"


def test_allow_unsigned_needs_an_api_key(tmp_path: Path) -> None:
    document = config_document(tmp_path / "db")
    document["stores"][0]["allow_unsigned"] = True
    problems = problems_of(document, tmp_path)
    assert any(p.startswith("stores[0]: allow_unsigned needs cryptum_api_key") for p in problems)

    document["stores"][0]["cryptum_api_key"] = "key"
    del document["stores"][0]["webhook_secret"]
    store = parse(document, tmp_path).stores[0]
    assert store.allow_unsigned and store.webhook_secret is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["stores"][0].update(webhook_secret=""),
            "stores[0].webhook_secret: must not be empty",
        ),
        (
            lambda d: d["stores"][1].update(cryptum_api_key=""),
            "stores[1].cryptum_api_key: must not be empty",
        ),
        (
            lambda d: d["stores"][0]["woocommerce"].update(consumer_key=""),
            "stores[0].woocommerce.consumer_key: must not be empty",
        ),
        (
            lambda d: d["stores"][1]["woocommerce"].update(consumer_secret=""),
            "stores[1].woocommerce.consumer_secret: must not be empty",
        ),
        (
            # Even where a webhook secret is optional, an empty one is a mistake.
            lambda d: d["stores"][0].update(
                allow_unsigned=True, cryptum_api_key="key", webhook_secret=""
            ),
            "stores[0].webhook_secret: must not be empty",
        ),
    ],
    ids=["webhook_secret", "cryptum_api_key", "consumer_key", "consumer_secret", "unsigned"],
)
def test_an_empty_inline_secret_is_an_error_naming_its_key(
    tmp_path: Path, change: Any, expected: str
) -> None:
    document = config_document(tmp_path / "db")
    change(document)
    assert expected in problems_of(document, tmp_path)


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ((), "webhook_secret"),
        ((), "cryptum_api_key"),
        (("woocommerce",), "consumer_key"),
        (("woocommerce",), "consumer_secret"),
    ],
)
def test_an_empty_secret_from_the_environment_is_an_error_naming_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: tuple[str, ...], key: str
) -> None:
    monkeypatch.setenv("EMPTY_SECRET", "")
    document = config_document(tmp_path / "db")
    table = document["stores"][0]
    for part in path:
        table = table[part]
    table[key] = "env:EMPTY_SECRET"
    prefix = ".".join(("stores[0]", *path, key))
    assert problems_of(document, tmp_path) == [
        f"{prefix}: must not be empty (environment variable EMPTY_SECRET is empty)"
    ]


@pytest.mark.parametrize("content", ["", "\n", "\r\n"], ids=["empty", "newline", "crlf"])
def test_an_empty_secret_file_is_an_error_naming_its_key(tmp_path: Path, content: str) -> None:
    (tmp_path / "hook").write_text(content)
    document = config_document(tmp_path / "db")
    store = document["stores"][0]
    del store["webhook_secret"]
    store["webhook_secret_file"] = "hook"
    assert problems_of(document, tmp_path) == [
        f"stores[0].webhook_secret_file: must not be empty ({tmp_path / 'hook'} is empty)"
    ]


def test_a_short_webhook_secret_is_a_warning_naming_its_key(tmp_path: Path) -> None:
    document = config_document(tmp_path / "db")
    document["stores"][1]["webhook_secret"] = "x" * (MIN_WEBHOOK_SECRET_LENGTH - 1)
    config = parse(document, tmp_path)  # valid: it loads
    assert config.warnings() == [
        "stores[1].webhook_secret: shorter than 16 characters; use a long random secret"
    ]


def test_a_short_webhook_secret_from_a_file_names_the_file_key(tmp_path: Path) -> None:
    (tmp_path / "hook").write_text("short-secret\n")
    document = config_document(tmp_path / "db")
    store = document["stores"][0]
    del store["webhook_secret"]
    store["webhook_secret_file"] = "hook"
    assert parse(document, tmp_path).warnings() == [
        "stores[0].webhook_secret_file: shorter than 16 characters; use a long random secret"
    ]


def test_a_webhook_secret_of_16_characters_or_none_warns_of_nothing(tmp_path: Path) -> None:
    document = config_document(tmp_path / "db")
    document["stores"][0]["webhook_secret"] = "x" * MIN_WEBHOOK_SECRET_LENGTH
    del document["stores"][1]["webhook_secret"]
    document["stores"][1].update(allow_unsigned=True, cryptum_api_key="key")
    assert parse(document, tmp_path).warnings() == []


def test_warnings_never_show_the_secret(tmp_path: Path) -> None:
    document = config_document(tmp_path / "db")
    document["stores"][0]["webhook_secret"] = "Zq7-short"
    warnings = parse(document, tmp_path).warnings()
    assert warnings and "Zq7" not in "\n".join(warnings)


def test_the_example_configs_placeholders_are_errors_naming_their_keys() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(REPO / "config.example.toml")
    assert caught.value.problems == [
        "stores[0].webhook_secret: still the example's placeholder; "
        "set the secret from the Cryptum dashboard",
        "stores[0].woocommerce.consumer_key: still the example's placeholder; "
        "set the consumer key of a WooCommerce REST API key with Read/Write permission "
        "(WooCommerce > Settings > Advanced > REST API)",
        "stores[0].woocommerce.consumer_secret: still the example's placeholder; "
        "set the consumer secret of that WooCommerce REST API key",
    ]


def test_the_filled_in_example_has_no_problem_and_no_warning(tmp_path: Path) -> None:
    assert load_config(filled_in_example(tmp_path)).warnings() == []


def test_the_unsigned_callback_cap_defaults_to_60_a_minute(tmp_path: Path) -> None:
    store = parse(config_document(tmp_path / "db"), tmp_path).stores[0]
    assert store.unsigned_callbacks_per_minute == 60


# Every problem at once: checks across keys run beside the keys' own checks.


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: (
                d["stores"][0]["woocommerce"].update(url="ftp://shop"),
                d["stores"][0].pop("webhook_secret"),
            ),
            [
                "stores[0].woocommerce.url: must be an http:// or https:// URL with no query "
                "or fragment",
                "stores[0]: webhook_secret (or webhook_secret_file) is required",
            ],
        ),
        (
            lambda d: (
                d["stores"][0]["woocommerce"].update(url="ftp://shop"),
                d["stores"][0]["woocommerce"].pop("consumer_key"),
            ),
            [
                "stores[0].woocommerce.url: must be an http:// or https:// URL with no query "
                "or fragment",
                "stores[0].woocommerce: consumer_key (or consumer_key_file) is required",
            ],
        ),
        (
            lambda d: d["stores"][0].update(name="Main Store", allow_unsigned=True),
            [
                "stores[0].name: use 1-64 lower-case letters, digits, '-' or '_'",
                "stores[0]: allow_unsigned needs cryptum_api_key (or cryptum_api_key_file): "
                "without a signature, confirming each callback with Cryptum's API is the only "
                "check left",
            ],
        ),
        (
            lambda d: d.update(
                delivery={"concurrency": 0, "backoff_initial_seconds": 10, "backoff_max_seconds": 5}
            ),
            [
                "delivery.concurrency: Input should be greater than or equal to 1",
                "delivery: backoff_initial_seconds must not exceed backoff_max_seconds",
            ],
        ),
        (
            lambda d: (
                d["stores"][1].update(name="main"),
                d["stores"][1]["woocommerce"].update(auth="digest"),
            ),
            [
                "stores[1].woocommerce.auth: Input should be 'auto', 'basic' or 'oauth1'",
                "stores: stores[1] has the same name as stores[0]",
            ],
        ),
        (
            lambda d: (
                d["stores"][0].update(webhook_secret_file="missing-file"),
                d["stores"][1].update(webhook_secret="whsec_change_me"),
            ),
            [
                "stores[0].webhook_secret_file: cannot read {base}/missing-file or "
                "{base}/credentials/missing-file: no such file",
                "stores[0]: set either webhook_secret or webhook_secret_file, not both",
                "stores[1].webhook_secret: still the example's placeholder; set the secret "
                "from the Cryptum dashboard",
            ],
        ),
    ],
    ids=[
        "bad-url-and-missing-secret",
        "bad-url-and-missing-key",
        "bad-name-and-unsigned-without-key",
        "bad-concurrency-and-backoff",
        "bad-auth-and-duplicate-name",
        "missing-file-secret-twice-and-placeholder",
    ],
)
def test_two_independent_problems_are_both_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Any, expected: list[str]
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    document = config_document(tmp_path / "db")
    change(document)
    assert problems_of(document, tmp_path) == [line.format(base=tmp_path) for line in expected]


# Where a relative *_file is found


def secret_file_document(tmp_path: Path, name: str = "webhook_secret") -> dict[str, Any]:
    document = config_document(tmp_path / "db")
    del document["stores"][0]["webhook_secret"]
    document["stores"][0]["webhook_secret_file"] = name
    return document


def test_without_credentials_directory_a_file_is_found_in_credentials_beside_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    (tmp_path / "credentials").mkdir()
    (tmp_path / "credentials" / "webhook_secret").write_text("from-credentials-dir\n")
    config = parse(secret_file_document(tmp_path), tmp_path)
    assert config.stores[0].webhook_secret.get_secret_value() == "from-credentials-dir"


def test_a_file_beside_the_config_comes_before_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    (tmp_path / "credentials").mkdir()
    (tmp_path / "credentials" / "webhook_secret").write_text("from-credentials-dir")
    (tmp_path / "webhook_secret").write_text("from-beside-the-config")
    config = parse(secret_file_document(tmp_path), tmp_path)
    assert config.stores[0].webhook_secret.get_secret_value() == "from-beside-the-config"


def test_the_credentials_directory_of_systemd_is_the_only_place_when_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "credentials").mkdir()
    (tmp_path / "credentials" / "webhook_secret").write_text("from-credentials-dir")
    systemd = tmp_path / "run-credentials"
    systemd.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(systemd))
    # The service reads what systemd handed it, never files it was not given.
    assert problems_of(secret_file_document(tmp_path), tmp_path) == [
        f"stores[0].webhook_secret_file: cannot read {systemd}/webhook_secret: no such file"
    ]


def test_an_encryption_key_is_found_in_credentials_beside_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    (tmp_path / "credentials").mkdir()
    (tmp_path / "credentials" / "payload_key").write_text("ab" * 32)
    document = config_document(tmp_path / "db")
    document["storage"]["encryption_key_file"] = "payload_key"
    assert parse(document, tmp_path).storage.cipher() is not None


def test_an_unreadable_file_carries_its_cause_for_doctor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError) as caught:
        parse(secret_file_document(tmp_path), tmp_path)
    ((problem, cause),) = caught.value.unreadable.items()
    assert problem == caught.value.problems[0]
    assert cause.paths == [tmp_path / "webhook_secret", tmp_path / "credentials/webhook_secret"]
    assert isinstance(cause.error, FileNotFoundError)


# The example's placeholders, however they are given


@pytest.mark.parametrize(
    "value", ["whsec_change_me", "CHANGE_ME", "whsec_…"], ids=["example", "upper", "ellipsis"]
)
def test_a_placeholder_secret_is_an_error_naming_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.setenv("PLACEHOLDER_SECRET", value)
    (tmp_path / "consumer_secret").write_text(value + "\n")
    document = config_document(tmp_path / "db")
    document["stores"][0]["webhook_secret"] = value
    document["stores"][1]["cryptum_api_key"] = "env:PLACEHOLDER_SECRET"
    woocommerce = document["stores"][1]["woocommerce"]
    del woocommerce["consumer_secret"]
    woocommerce["consumer_secret_file"] = "consumer_secret"
    problems = problems_of(document, tmp_path)
    assert problems == [
        "stores[0].webhook_secret: still the example's placeholder; "
        "set the secret from the Cryptum dashboard",
        "stores[1].cryptum_api_key: still the example's placeholder; "
        "set the API key from the Cryptum dashboard",
        "stores[1].woocommerce.consumer_secret_file: still the example's placeholder; "
        "write the consumer secret of that WooCommerce REST API key in the file",
    ]
    assert "change_me" not in "\n".join(problems).lower()


def test_every_config_field_says_what_it_is_for() -> None:
    undescribed = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            if not field.description:
                undescribed.append(prefix + name)
            for kind in (field.annotation, *typing.get_args(field.annotation)):
                if isinstance(kind, type) and issubclass(kind, BaseModel):
                    walk(kind, f"{prefix}{name}.")

    walk(Config, "")
    assert undescribed == []
