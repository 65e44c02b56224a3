"""`cryptum-bridge migrate-storage`: move the config's SQLite database into an empty MySQL one.

The config's `[storage]` names the source, so the target's password comes
from elsewhere, and never from the command line (shell history, `ps`): from
`--password-file FILE`, or from the environment variable
`CRYPTUM_BRIDGE_TARGET_PASSWORD`. Neither is needed for a MySQL user that
authenticates without one (a unix socket).

The copy itself (`storage.copying`) checks that no `serve` holds the source
and that the target is empty, copies every row, then counts both sides;
this module turns that into a summary and an exit status.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pydantic import SecretStr

from .admin import render_table
from .config import ConfigError, StorageConfig
from .mysql_url import parse_mysql_url

if TYPE_CHECKING:
    from .storage.copying import CopyReport

__all__ = ["TARGET_PASSWORD_VARIABLE", "migrate", "render_report", "target_settings"]

TARGET_PASSWORD_VARIABLE = "CRYPTUM_BRIDGE_TARGET_PASSWORD"
# A progress line at most this often per table, and at its end.
_PROGRESS_EVERY_ROWS = 50_000


def target_settings(
    url: str,
    *,
    password_file: Path | None = None,
    tls: bool = False,
    tls_ca_file: Path | None = None,
    environ: Mapping[str, str] = os.environ,
) -> StorageConfig:
    """The MySQL storage `--to` names, with its password and TLS settings.

    A bad URL, or a password given both ways or empty, is a `ConfigError`
    (exit 2); a password file that cannot be read, an `OSError` (exit 1).
    """
    try:
        parse_mysql_url(url)
    except ValueError as error:
        raise ConfigError([f"migrate-storage --to: {error}"]) from None
    password = _target_password(password_file, environ)
    settings = StorageConfig(url=url, tls=tls or tls_ca_file is not None, tls_ca_file=tls_ca_file)
    # Set as it is: through the config's validation a password starting with
    # "env:" would be read as the name of a variable.
    return settings.model_copy(update={"password": password})


def _target_password(password_file: Path | None, environ: Mapping[str, str]) -> SecretStr | None:
    from_environment = environ.get(TARGET_PASSWORD_VARIABLE)
    if password_file is not None and from_environment is not None:
        raise ConfigError(
            [
                f"migrate-storage: give the target's password with --password-file or "
                f"{TARGET_PASSWORD_VARIABLE}, not both"
            ]
        )
    if password_file is not None:
        password = password_file.read_text(encoding="utf-8").rstrip("\r\n")
        where = f"--password-file: {password_file} is empty"
    elif from_environment is not None:
        password = from_environment
        where = f"{TARGET_PASSWORD_VARIABLE}: is set but empty"
    else:
        return None
    if not password:
        raise ConfigError([f"migrate-storage {where}"])
    return SecretStr(password)


def render_report(report: CopyReport) -> str:
    """Each table's rows and highest id on both sides, one line per table."""
    headers = ["TABLE", "SOURCE ROWS", "COPIED ROWS", "HIGHEST ID (SOURCE / COPY)", "CHECK"]
    rows = [
        [
            table.table,
            str(table.source_rows),
            str(table.target_rows),
            f"{_id(table.source_highest)} / {_id(table.target_highest)}",
            "ok" if table.matches else "DIFFERS",
        ]
        for table in report.tables
    ]
    return render_table(headers, rows)


def _progress_printer(out: TextIO) -> Callable[[str, int, int], None]:
    """Tells `out` how a table's copy goes: every so many rows, and at its end."""
    printed: dict[str, int] = {}

    def progress(table: str, copied: int, total: int) -> None:
        if copied == total or copied - printed.get(table, 0) >= _PROGRESS_EVERY_ROWS:
            printed[table] = copied
            out.write(f"  {table}: {copied} of {total} rows copied\n")
            out.flush()

    return progress


def _id(value: int | None) -> str:
    return "-" if value is None else str(value)


async def migrate(source: StorageConfig, target: StorageConfig, out: TextIO, err: TextIO) -> int:
    """Copy, print the summary; 0 when every table matches, 1 otherwise."""
    # Imported here: `cryptum-bridge --help` loads no database driver.
    from .storage.copying import copy_storage

    if target.warnings():  # the config's own warning names a key this command does not have
        err.write(
            "warning: migrate-storage: --tls is off for a MySQL server on another machine; "
            "callbacks and the password cross the network in the clear\n"
        )
    out.write(f"copying {source.describe()} into {target.describe()}\n")
    out.flush()
    report = await copy_storage(source, target, progress=_progress_printer(out))
    out.write(render_report(report) + "\n")
    if not report.matches:
        differing = ", ".join(table.table for table in report.tables if not table.matches)
        err.write(
            f"migrate-storage: the copy differs from the source ({differing}); keep using "
            f"{source.describe()}, which is unchanged, and empty {target.describe()} before "
            "trying again\n"
        )
        return 1
    out.write(
        "Every table was copied whole: the row counts and highest ids match.\n"
        f'Next: in the config\'s [storage], replace path with url = "{target.describe()}" '
        "and password_file (the file holding its password), then start the daemon. The "
        "SQLite file is left as it was.\n"
    )
    return 0
