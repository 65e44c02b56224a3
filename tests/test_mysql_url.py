"""The MySQL storage URL and the `[storage]` keys that go with it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bridge.config import ConfigError, StorageConfig, parse_config
from bridge.mysql_url import DEFAULT_PORT, MysqlTarget, parse_mysql_url

from support import CONFIGURED_SECRETS, config_document

DB_PASSWORD = "db-password-7f3a91"
CONFIGURED_SECRETS.add(DB_PASSWORD)


def test_a_full_url_names_user_server_port_and_database() -> None:
    assert parse_mysql_url("mysql://bridge@db.internal:3307/shop_bridge") == MysqlTarget(
        user="bridge", host="db.internal", port=3307, database="shop_bridge"
    )


def test_the_port_defaults_to_mysqls_own() -> None:
    target = parse_mysql_url("mysql://bridge@db.internal/bridge")
    assert target.port == DEFAULT_PORT == 3306


def test_a_socket_on_this_machine() -> None:
    target = parse_mysql_url("mysql://bridge@localhost/bridge?socket=/run/mysqld/mysqld.sock")
    assert (target.host, target.socket) == ("localhost", "/run/mysqld/mysqld.sock")
    assert target.is_local
    assert target.display() == "mysql://bridge@localhost/bridge?socket=/run/mysqld/mysqld.sock"


def test_a_percent_encoded_user_is_decoded() -> None:
    assert parse_mysql_url("mysql://shop%40bridge@db/bridge").user == "shop@bridge"


def test_an_ipv6_server() -> None:
    target = parse_mysql_url("mysql://bridge@[2001:db8::7]:3306/bridge")
    assert (target.host, target.port) == ("2001:db8::7", 3306)


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("10.0.0.5", False),
        ("db.internal", False),
    ],
)
def test_only_loopback_or_a_socket_is_local(host: str, local: bool) -> None:
    shown = f"[{host}]" if ":" in host else host
    assert parse_mysql_url(f"mysql://bridge@{shown}/bridge").is_local is local


def test_display_writes_the_url_back() -> None:
    url = "mysql://bridge@db.internal:3307/bridge"
    assert parse_mysql_url(url).display() == url


NOT_MYSQL = 'must start with "mysql://" (for SQLite, set storage.path instead)'
PASSWORD_IN_URL = (
    'must not hold a password: set storage.password_file or storage.password = "env:NAME"'
)
NO_DATABASE = (
    "must end in the database's name (letters, digits, _ or $; up to 64), "
    "as in mysql://bridge@db.internal:3306/bridge"
)
RELATIVE_SOCKET = "socket must be an absolute path, as in ?socket=/run/mysqld/mysqld.sock"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgres://bridge@db/bridge", NOT_MYSQL),
        ("/var/lib/bridge.sqlite3", NOT_MYSQL),
        ("mysql://bridge:hunter2@db/bridge", PASSWORD_IN_URL),
        (
            "mysql://db.internal/bridge",
            "must name the user, as in mysql://bridge@db.internal:3306/bridge",
        ),
        (
            "mysql://bridge@/bridge",
            "must name the server, as in mysql://bridge@db.internal:3306/bridge",
        ),
        ("mysql://bridge@db:0/bridge", "the port must be a number from 1 to 65535"),
        ("mysql://bridge@db:99999/bridge", "the port must be a number from 1 to 65535"),
        ("mysql://bridge@db:port/bridge", "the port must be a number from 1 to 65535"),
        ("mysql://bridge@db", NO_DATABASE),
        ("mysql://bridge@db/", NO_DATABASE),
        ("mysql://bridge@db/bad-name", NO_DATABASE),
        ("mysql://bridge@db/a/b", NO_DATABASE),
        ("mysql://bridge@db/" + "d" * 65, NO_DATABASE),
        ("mysql://bridge@db/bridge#x", "must not have a #fragment"),
        ("mysql://bridge@db/bridge?ssl=1", "unknown option 'ssl': the only one is ?socket=/path"),
        ("mysql://bridge@db/bridge?socket=run/x.sock", RELATIVE_SOCKET),
        ("mysql://bridge@db/bridge?socket=", RELATIVE_SOCKET),
        ("mysql://bridge@db/bridge?socket=/a&socket=/b", "socket is given more than once"),
        ("mysql://bridge@db/bridge?socket", "the query must be ?socket=/path/to/mysqld.sock"),
        ("mysql://" + "u" * 81 + "@db/bridge", "the user name is longer than 80 characters"),
    ],
)
def test_a_bad_url_says_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        parse_mysql_url(url)


def test_a_password_in_the_url_is_never_echoed() -> None:
    with pytest.raises(ValueError) as refused:
        parse_mysql_url("mysql://bridge:hunter2@db/bridge")
    assert "hunter2" not in str(refused.value)


def test_the_longest_names_mysql_allows_are_taken() -> None:
    target = parse_mysql_url("mysql://" + "u" * 80 + "@db/" + "d" * 64)
    assert (len(target.user), len(target.database)) == (80, 64)


# The [storage] keys -----------------------------------------------------------------


def storage(tmp_path: Path, **table: Any) -> dict[str, Any]:
    document = config_document(tmp_path / "bridge.sqlite3")
    document["storage"] = table
    return document


def problems(tmp_path: Path, **table: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(storage(tmp_path, **table), base_dir=tmp_path)
    return caught.value.problems


def test_a_url_makes_the_storage_mysql_with_its_password(tmp_path: Path) -> None:
    config = parse_config(
        storage(tmp_path, url="mysql://bridge@127.0.0.1/bridge", password=DB_PASSWORD),
        base_dir=tmp_path,
    )
    assert config.storage.engine == "mysql"
    assert config.storage.mysql.database == "bridge"
    assert config.storage.password is not None
    assert config.storage.password.get_secret_value() == DB_PASSWORD
    assert config.storage.describe() == "mysql://bridge@127.0.0.1:3306/bridge"
    assert DB_PASSWORD not in repr(config.storage)


def test_without_a_url_the_storage_is_sqlite(tmp_path: Path) -> None:
    config = parse_config(storage(tmp_path, path=str(tmp_path / "x.sqlite3")), base_dir=tmp_path)
    assert config.storage.engine == "sqlite"
    assert config.storage.describe() == str(tmp_path / "x.sqlite3")
    with pytest.raises(ValueError, match=r"storage\.url is not set"):
        _ = config.storage.mysql


def test_the_password_comes_from_a_file_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "db_password").write_text(DB_PASSWORD + "\n")
    config = parse_config(
        storage(tmp_path, url="mysql://bridge@db/bridge", password_file="db_password", tls=True),
        base_dir=tmp_path,
    )
    assert config.storage.password is not None
    assert config.storage.password.get_secret_value() == DB_PASSWORD


def test_the_password_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE_DB_PASSWORD", DB_PASSWORD)
    config = parse_config(
        storage(tmp_path, url="mysql://bridge@127.0.0.1/bridge", password="env:BRIDGE_DB_PASSWORD"),
        base_dir=tmp_path,
    )
    assert config.storage.password is not None
    assert config.storage.password.get_secret_value() == DB_PASSWORD


def test_path_and_url_together_are_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, path="/x.sqlite3", url="mysql://bridge@db/bridge") == [
        "storage: set either path (SQLite) or url (MySQL), not both"
    ]


def test_mysql_keys_without_a_url_are_refused_one_by_one(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(DB_PASSWORD)
    found = problems(tmp_path, password=DB_PASSWORD, tls=True, tls_ca_file="/ca.pem")
    assert found == [
        "storage: password is for a MySQL storage: set url too",
        "storage: tls is for a MySQL storage: set url too",
        "storage: tls_ca_file is for a MySQL storage: set url too",
    ]
    assert problems(tmp_path, password_file="pw") == [
        "storage: password_file is for a MySQL storage: set url too"
    ]
    assert not any(DB_PASSWORD in problem for problem in found)


def test_the_password_given_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(DB_PASSWORD)
    found = problems(
        tmp_path, url="mysql://bridge@db/bridge", password=DB_PASSWORD, password_file="pw"
    )
    assert found == ["storage: set either password or password_file, not both"]


def test_a_bad_url_is_a_problem_naming_the_key(tmp_path: Path) -> None:
    assert problems(tmp_path, url="mysql://bridge:pw@db/bridge") == [
        "storage.url: must not hold a password: set storage.password_file or "
        'storage.password = "env:NAME"'
    ]


@pytest.mark.parametrize("size", [1, 201])
def test_the_pool_size_is_bounded(tmp_path: Path, size: int) -> None:
    found = problems(tmp_path, url="mysql://bridge@db/bridge", pool_size=size)
    assert [problem.split(":")[0] for problem in found] == ["storage.pool_size"]


def test_tls_off_to_another_machine_is_a_warning(tmp_path: Path) -> None:
    remote = parse_config(
        storage(tmp_path, url="mysql://bridge@db.internal/bridge"), base_dir=tmp_path
    )
    assert remote.warnings() == [
        "storage.tls: off for a MySQL server on another machine; callbacks and the password "
        "cross the network in the clear"
    ]
    secured = StorageConfig(url="mysql://bridge@db.internal/bridge", tls=True)
    local = StorageConfig(url="mysql://bridge@127.0.0.1/bridge")
    socket = StorageConfig(url="mysql://bridge@localhost/bridge?socket=/run/mysqld.sock")
    sqlite = StorageConfig(path=tmp_path / "x.sqlite3")
    assert [s.warnings() for s in (secured, local, socket, sqlite)] == [[], [], [], []]
