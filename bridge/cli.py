"""The `cryptum-bridge` command line.

Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.

Options go anywhere: `events list --json --config X`, `--config X events
list --json` and `events --json list --config X` are the same command. An
option a command shares with its actions (`SharedOption`) is added at every
level of its parsers with a suppressed default, so a level where it is not
given leaves the value from another level alone; the defaults are filled in
after parsing. Every command is registered in `build_parser`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from . import __version__
from .admin import (
    list_deliveries,
    list_events,
    replay_event,
    retry_dead,
    show_delivery,
    show_event,
    show_stats,
)
from .config import Config, ConfigError, StorageConfig, default_config_path, load_config
from .encryption import PayloadKeyError
from .log_setup import configure_logging
from .migrate_storage import TARGET_PASSWORD_VARIABLE, migrate, target_settings
from .send_test import STATUSES
from .signature import sign
from .storage import DeliveryState, StorageError

__all__ = ["Commands", "SharedOption", "build_parser", "main", "parse_arguments"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

Run = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class SharedOption:
    """An option accepted before or after a command's action, with its real default."""

    flag: str
    default: Any
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


CONFIG = SharedOption(
    "--config",
    None,
    {
        "type": Path,
        "metavar": "PATH",
        "help": "config file (default: $CRYPTUM_BRIDGE_CONFIG, else "
        "/etc/cryptum-bridge/config.toml)",
    },
)
DATABASE = SharedOption(
    "--database",
    None,
    {"type": Path, "metavar": "PATH", "help": "database file (default: from the config)"},
)
JSON = SharedOption("--json", False, {"action": "store_true", "help": "machine-readable output"})
# Every shared option, for filling in defaults after parsing.
SHARED_OPTIONS = (CONFIG, DATABASE, JSON)
# What the admin commands over the database take.
ADMIN_OPTIONS = (CONFIG, DATABASE, JSON)


def _shared(options: Sequence[SharedOption]) -> argparse.ArgumentParser:
    """A parent parser adding `options` with no default, so one level never undoes another."""
    parent = argparse.ArgumentParser(add_help=False)
    for option in options:
        parent.add_argument(option.flag, default=argparse.SUPPRESS, **option.settings)
    return parent


class Commands:
    """Where subcommands, and the actions under them, are registered."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._choices = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
        self._options: dict[str, Sequence[SharedOption]] = {}

    def add(
        self,
        name: str,
        run: Run,
        help_text: str,
        *,
        description: str | None = None,
        options: Sequence[SharedOption] = (CONFIG,),
    ) -> argparse.ArgumentParser:
        """A command taking `options` (`--config` unless told otherwise) and its own arguments."""
        command = self._choices.add_parser(
            name,
            help=help_text,
            description=description or help_text,
            parents=[_shared(options)],
        )
        command.set_defaults(run=run)
        self._options[name] = options
        return command

    def actions(self, name: str) -> Callable[[str, str], argparse.ArgumentParser]:
        """A function adding an action under the command `name`, taking the command's options."""
        command = self._choices.choices[name]
        choices = command.add_subparsers(dest="action", required=True, metavar="ACTION")
        parent = _shared(self._options[name])

        def action(name: str, help_text: str) -> argparse.ArgumentParser:
            return choices.add_parser(name, help=help_text, description=help_text, parents=[parent])

        return action


def _config_path(arguments: argparse.Namespace) -> Path:
    return Path(arguments.config or default_config_path())


def _load(arguments: argparse.Namespace) -> Config:
    return load_config(_config_path(arguments))


def _storage_settings(arguments: argparse.Namespace) -> StorageConfig:
    """The storage an admin command works on: --database's SQLite file, else the config's.

    With --database alone no config is read, so payloads sealed with a key
    stay closed; with --config too, the file is opened with its keys.
    """
    if arguments.database is None:
        return _load(arguments).storage
    database = Path(arguments.database)
    if arguments.config is None:
        return StorageConfig(path=database)
    return _load(arguments).storage.model_copy(
        update={"path": database, "url": None, "password": None, "tls": False, "tls_ca_file": None}
    )


def run_serve(arguments: argparse.Namespace) -> int:
    from .serve import run_event_loop, serve  # imports aiohttp's server only for the daemon

    path = _config_path(arguments)
    config = load_config(path)
    configure_logging(config.logging, batch_per_loop_turn=True)
    return run_event_loop(serve(config, path))


def run_demo_command(arguments: argparse.Namespace) -> int:
    from .demo import run_demo

    return asyncio.run(run_demo(sys.stdout))


def run_plugin_zip(arguments: argparse.Namespace) -> int:
    from .plugin_zip import PluginNotFound, build_plugin_zip

    try:
        target = build_plugin_zip(Path(arguments.path))
    except PluginNotFound as error:
        print(f"cryptum-bridge: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"cryptum-bridge: cannot write {arguments.path}: {error.strerror}", file=sys.stderr)
        return 1
    print(f"{target}: upload it on WordPress's Plugins > Add New Plugin > Upload Plugin")
    return 0


def _storage_summary(storage: StorageConfig, dumped: dict[str, Any]) -> dict[str, Any]:
    """The storage section as check-config shows it: the engine first, then where it is.

    A MySQL URL never holds a password (the config refuses one), and the
    password itself is dumped masked like every other secret. A SQLite
    storage shows the file the default resolves to, not a missing `path`.
    """
    summary: dict[str, Any] = {"engine": storage.engine}
    if storage.engine == "sqlite":
        summary["path"] = str(storage.database_path)
    return summary | dumped


def run_check_config(arguments: argparse.Namespace) -> int:
    path = _config_path(arguments)
    config = load_config(path)
    summary = config.model_dump(mode="json", exclude_none=True)
    summary["storage"] = _storage_summary(config.storage, summary["storage"])
    print(f"{path}: OK (secrets masked)")
    print(json.dumps(summary, indent=2))
    # On stderr, like the errors, so stdout stays the summary alone; the
    # config is valid, so the exit code stays 0.
    for warning in config.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK


def _found(found: bool, what: str) -> int:
    if not found:
        print(f"no {what}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def run_events(arguments: argparse.Namespace) -> int:
    settings = _storage_settings(arguments)
    if arguments.action == "list":
        options = {"limit": arguments.limit, "store": arguments.store, "as_json": arguments.json}
        asyncio.run(list_events(settings, sys.stdout, **options))
        return EXIT_OK
    event_id = arguments.event_id
    shown = asyncio.run(show_event(settings, sys.stdout, event_id, as_json=arguments.json))
    return _found(shown, f"event {event_id}")


def _list_deliveries(arguments: argparse.Namespace, *, state: str | None) -> int:
    options = {"store": arguments.store, "limit": arguments.limit, "as_json": arguments.json}
    asyncio.run(list_deliveries(_storage_settings(arguments), sys.stdout, state=state, **options))
    return EXIT_OK


def run_deliveries(arguments: argparse.Namespace) -> int:
    if arguments.action == "list":
        return _list_deliveries(arguments, state=arguments.state)
    delivery_id = arguments.delivery_id
    shown = asyncio.run(
        show_delivery(_storage_settings(arguments), sys.stdout, delivery_id, as_json=arguments.json)
    )
    return _found(shown, f"delivery {delivery_id}")


def run_dead_letter(arguments: argparse.Namespace) -> int:
    if arguments.action == "list":
        return _list_deliveries(arguments, state=DeliveryState.DEAD)
    if arguments.all == (arguments.delivery_id is not None):
        print("dead-letter retry: give one DELIVERY_ID or --all", file=sys.stderr)
        return EXIT_USAGE
    count = asyncio.run(retry_dead(_storage_settings(arguments), delivery_id=arguments.delivery_id))
    if arguments.delivery_id is not None and count == 0:
        return _found(False, f"dead delivery {arguments.delivery_id}")
    print(f"{count} deliveries queued again")
    return EXIT_OK


def run_doctor_command(arguments: argparse.Namespace) -> int:
    from .doctor import run_doctor

    code, findings = run_doctor(_config_path(arguments))
    for finding in findings:
        print(finding.render())
    problems = sum(not finding.ok for finding in findings)
    warnings = sum(finding.warning for finding in findings)
    summary = f"{problems} problem(s) found" if problems else "No problems found"
    print(f"\n{summary}" + (f", {warnings} warning(s)." if warnings else "."))
    return code


def run_stats(arguments: argparse.Namespace) -> int:
    asyncio.run(show_stats(_storage_settings(arguments), sys.stdout, as_json=arguments.json))
    return EXIT_OK


def run_replay(arguments: argparse.Namespace) -> int:
    count = asyncio.run(replay_event(_storage_settings(arguments), arguments.event_id))
    if count == 0:
        print(
            f"event {arguments.event_id}: no such event, or its delivery is still pending",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    print(f"event {arguments.event_id}: delivery queued again")
    return EXIT_OK


def run_migrate_storage(arguments: argparse.Namespace) -> int:
    target = target_settings(
        arguments.to,
        password_file=arguments.password_file,
        tls=arguments.tls,
        tls_ca_file=arguments.tls_ca_file,
    )
    return asyncio.run(migrate(_storage_settings(arguments), target, sys.stdout, sys.stderr))


def run_send_test(arguments: argparse.Namespace) -> int:
    from .send_test import build_test_callback, plan, send_test_callback

    config = _load(arguments)
    store = config.store_named(arguments.store)
    if store is None:
        raise ConfigError([f"stores: no store named {arguments.store!r}"])
    lines = plan(
        config,
        store,
        woo_order_id=arguments.order,
        status=arguments.status,
        cryptum_order_id=arguments.cryptum_order,
        url=arguments.url,
    )
    print("\n".join(lines))
    if not arguments.yes:
        # Never by default: a script or a pasted line must not change an order unasked.
        print("send-test: nothing sent; add --yes to send it", file=sys.stderr)
        return EXIT_FAILURE
    body = build_test_callback(
        store,
        woo_order_id=arguments.order,
        status=arguments.status,
        cryptum_order_id=arguments.cryptum_order,
    )
    try:
        status, answer = asyncio.run(send_test_callback(config, store, body, url=arguments.url))
    except (OSError, aiohttp.ClientError) as error:
        print(
            f"send-test: the bridge did not answer: {type(error).__name__}: {error}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    print(f"sent:   {body.decode()}")
    print(f"answer: {status} {json.dumps(answer)}")
    if status == 200 and isinstance(answer, dict):
        config_path = shlex.quote(str(_config_path(arguments)))
        event_id = answer.get("event_id")
        print(f"Follow it with: cryptum-bridge events show {event_id} --config {config_path}")
    return EXIT_OK if status == 200 else EXIT_FAILURE


def _secret_for_signing(arguments: argparse.Namespace) -> str:
    if arguments.secret_file is not None:
        return Path(arguments.secret_file).read_text(encoding="utf-8").rstrip("\r\n")
    if arguments.store is not None:
        store = _load(arguments).store_named(arguments.store)
        if store is None or store.webhook_secret is None:
            raise ConfigError([f"stores: no store named {arguments.store!r}"])
        return store.webhook_secret.get_secret_value()
    raise ConfigError(["sign: give --secret-file FILE, or --store NAME with --config"])


def run_sign(arguments: argparse.Namespace) -> int:
    secret = _secret_for_signing(arguments)
    if arguments.body in (None, "-"):
        body = sys.stdin.buffer.read()
    else:
        body = Path(arguments.body).read_bytes()
    print(sign(body, secret))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cryptum-bridge",
        description="Verify, store and deliver Cryptum payment callbacks to WooCommerce.",
        parents=[_shared([CONFIG])],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = Commands(parser)
    _add_daemon_commands(commands)
    _add_admin_commands(commands)
    _add_migrate_storage(commands)
    _add_tool_commands(commands)
    return parser


def _add_daemon_commands(commands: Commands) -> None:
    commands.add(
        "demo",
        run_demo_command,
        "Play the whole flow against built-in simulators, in seconds.",
        description="Run the bridge with simulated Cryptum and WooCommerce on 127.0.0.1 and a "
        "temporary database, and show what happens to a few payments.",
        options=(),
    )
    commands.add("serve", run_serve, "Run the daemon in the foreground.")
    commands.add(
        "check-config", run_check_config, "Validate the config and print it with secrets masked."
    )

    commands.add(
        "doctor",
        run_doctor_command,
        "Check the config, the database, each shop and Cryptum; say how to fix problems.",
    )


def _add_admin_commands(commands: Commands) -> None:
    commands.add("events", run_events, "List or show stored callbacks.", options=ADMIN_OPTIONS)
    action = commands.actions("events")
    listing = action("list", "newest events first")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--store", help="only this store's events")
    action("show", "one event with its payload").add_argument(
        "event_id", type=int, metavar="EVENT_ID"
    )

    commands.add(
        "deliveries",
        run_deliveries,
        "List or show deliveries to WooCommerce.",
        options=ADMIN_OPTIONS,
    )
    action = commands.actions("deliveries")
    listing = action("list", "newest deliveries first")
    listing.add_argument("--state", choices=[state.value for state in DeliveryState])
    listing.add_argument("--store", help="only this store's deliveries")
    listing.add_argument("--limit", type=int, default=50)
    action("show", "one delivery, with its earlier runs").add_argument(
        "delivery_id", type=int, metavar="DELIVERY_ID"
    )

    commands.add(
        "dead-letter",
        run_dead_letter,
        "Deliveries that gave up: list them, or queue them again.",
        options=ADMIN_OPTIONS,
    )
    action = commands.actions("dead-letter")
    listing = action("list", "dead deliveries, newest first")
    listing.add_argument("--store", help="only this store's deliveries")
    listing.add_argument("--limit", type=int, default=50)
    retry = action("retry", "queue one dead delivery, or --all, again")
    retry.add_argument("delivery_id", type=int, nargs="?", metavar="DELIVERY_ID")
    retry.add_argument("--all", action="store_true", help="every dead delivery")

    commands.add(
        "stats",
        run_stats,
        "Deliveries waiting, finished runs by how they ended (replays included), dead letters "
        "now, and the oldest delivery waiting.",
        options=ADMIN_OPTIONS,
    )
    commands.add(
        "replay",
        run_replay,
        "Deliver a stored callback again (a new note if it changes anything).",
        options=(CONFIG, DATABASE),
    ).add_argument("event_id", type=int, metavar="EVENT_ID")


def _add_migrate_storage(commands: Commands) -> None:
    migrating = commands.add(
        "migrate-storage",
        run_migrate_storage,
        "Copy the database into an empty MySQL one (daemon stopped), verifying the counts.",
        description="Copy the SQLite database the config (or --database) names into an empty "
        "MySQL or MariaDB database, every row with its id, then compare the row counts and "
        "highest ids of both. Stop the daemon first. The SQLite file is only read.",
        options=(CONFIG, DATABASE),
    )
    migrating.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="the target: mysql://user@host:port/database (an empty database)",
    )
    migrating.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help=f"the target user's password (default: ${TARGET_PASSWORD_VARIABLE}, if set)",
    )
    migrating.add_argument(
        "--tls", action="store_true", help="connect over TLS, verifying the certificate"
    )
    migrating.add_argument(
        "--tls-ca-file",
        type=Path,
        metavar="FILE",
        help="CA bundle for the server's certificate (implies --tls)",
    )


def _add_tool_commands(commands: Commands) -> None:
    tester = commands.add(
        "send-test",
        run_send_test,
        "Sign a test callback with a store's secret and post it to the running bridge.",
        description="Sign a test callback with a store's secret and post it to the running "
        "bridge. It says first what the callback will change; a delivered confirmed, "
        "on-hold, failed or cancelled status really changes that WooCommerce order, so "
        "nothing is sent without --yes.",
    )
    tester.add_argument("--store", required=True, help="the configured store to test")
    tester.add_argument("--order", required=True, metavar="WOO_ID", help="WooCommerce order id")
    tester.add_argument(
        "--status", required=True, choices=STATUSES, help="payment status to report"
    )
    tester.add_argument("--url", help="callback URL (default: from server.listen)")
    tester.add_argument(
        "--cryptum-order",
        metavar="ID",
        help="a real Cryptum order id (stores with an API key confirm every callback)",
    )
    tester.add_argument("--yes", action="store_true", help="send it: change the order as described")

    zipper = commands.add(
        "plugin-zip",
        run_plugin_zip,
        'Build cryptum-bridge.zip, the WordPress plugin for the "Upload Plugin" screen.',
        options=(),
    )
    zipper.add_argument(
        "path",
        nargs="?",
        default=".",
        metavar="PATH",
        help="the zip to write, or a folder to write cryptum-bridge.zip in (default: here)",
    )

    signer = commands.add(
        "sign", run_sign, "Print the X-Webhook-Signature value for a body, e.g. to test with curl."
    )
    signer.add_argument("body", nargs="?", metavar="FILE", help="body file (default: stdin)")
    signer.add_argument("--store", help="sign with this configured store's webhook secret")
    signer.add_argument("--secret-file", metavar="FILE", help="sign with the secret in FILE")


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse `argv`, then give every shared option not given at any level its default."""
    arguments = build_parser().parse_args(argv)
    for option in SHARED_OPTIONS:
        if not hasattr(arguments, option.dest):
            setattr(arguments, option.dest, option.default)
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        return int(arguments.run(arguments))
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    except PayloadKeyError as error:
        print(f"storage: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except StorageError as error:
        # Before logging is configured, so plain stderr.
        print(f"storage: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as error:
        print(f"{error.filename or 'error'}: {error.strerror or error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE
