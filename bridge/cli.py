"""The `cryptum-bridge` command line.

Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

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
from .config import Config, ConfigError, default_config_path, load_config
from .encryption import PayloadCipher, PayloadKeyError
from .log_setup import configure_logging
from .signature import sign
from .storage import StorageError

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _load(arguments: argparse.Namespace) -> Config:
    return load_config(arguments.config or default_config_path())


def _database_path(arguments: argparse.Namespace) -> Path:
    if arguments.database is not None:
        return Path(arguments.database)
    return _load(arguments).storage.database_path


def _cipher(arguments: argparse.Namespace) -> PayloadCipher | None:
    """The payload key from the config; with only --database, payloads must be plain."""
    if arguments.database is not None and arguments.config is None:
        return None
    return _load(arguments).storage.cipher()


def run_serve(arguments: argparse.Namespace) -> int:
    from .serve import serve  # imports aiohttp's server only for the daemon

    path = arguments.config or default_config_path()
    config = load_config(path)
    configure_logging(config.logging)
    return asyncio.run(serve(config, path))


def run_demo_command(arguments: argparse.Namespace) -> int:
    from .demo import run_demo

    return asyncio.run(run_demo(sys.stdout))


def run_check_config(arguments: argparse.Namespace) -> int:
    path = arguments.config or default_config_path()
    config = load_config(path)
    summary = config.model_dump(mode="json", exclude_none=True)
    summary["storage"]["path"] = str(config.storage.database_path)
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
    database = _database_path(arguments)
    if arguments.action == "list":
        options = {"limit": arguments.limit, "store": arguments.store, "as_json": arguments.json}
        asyncio.run(list_events(database, sys.stdout, **options))
        return EXIT_OK
    event_id = arguments.event_id
    shown = asyncio.run(
        show_event(
            database, sys.stdout, event_id, as_json=arguments.json, cipher=_cipher(arguments)
        )
    )
    return _found(shown, f"event {event_id}")


def _list_deliveries(arguments: argparse.Namespace, *, state: str | None) -> int:
    options = {"store": arguments.store, "limit": arguments.limit, "as_json": arguments.json}
    asyncio.run(list_deliveries(_database_path(arguments), sys.stdout, state=state, **options))
    return EXIT_OK


def run_deliveries(arguments: argparse.Namespace) -> int:
    if arguments.action == "list":
        return _list_deliveries(arguments, state=arguments.state)
    delivery_id = arguments.delivery_id
    shown = asyncio.run(
        show_delivery(_database_path(arguments), sys.stdout, delivery_id, as_json=arguments.json)
    )
    return _found(shown, f"delivery {delivery_id}")


def run_dead_letter(arguments: argparse.Namespace) -> int:
    if arguments.action == "list":
        return _list_deliveries(arguments, state="dead")
    if arguments.all == (arguments.delivery_id is not None):
        print("dead-letter retry: give one DELIVERY_ID or --all", file=sys.stderr)
        return EXIT_USAGE
    count = asyncio.run(retry_dead(_database_path(arguments), delivery_id=arguments.delivery_id))
    if arguments.delivery_id is not None and count == 0:
        return _found(False, f"dead delivery {arguments.delivery_id}")
    print(f"{count} deliveries queued again")
    return EXIT_OK


def run_doctor_command(arguments: argparse.Namespace) -> int:
    from .doctor import run_doctor

    code, findings = run_doctor(arguments.config or default_config_path())
    for finding in findings:
        print(finding.render())
    problems = sum(not finding.ok for finding in findings)
    warnings = sum(finding.warning for finding in findings)
    summary = f"{problems} problem(s) found" if problems else "No problems found"
    print(f"\n{summary}" + (f", {warnings} warning(s)." if warnings else "."))
    return code


def run_stats(arguments: argparse.Namespace) -> int:
    asyncio.run(show_stats(_database_path(arguments), sys.stdout, as_json=arguments.json))
    return EXIT_OK


def run_replay(arguments: argparse.Namespace) -> int:
    count = asyncio.run(replay_event(_database_path(arguments), arguments.event_id))
    if count == 0:
        print(
            f"event {arguments.event_id}: no such event, or its delivery is still pending",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    print(f"event {arguments.event_id}: delivery queued again")
    return EXIT_OK


def run_send_test(arguments: argparse.Namespace) -> int:
    from .send_test import build_test_callback, send_test_callback

    config = _load(arguments)
    store = config.store_named(arguments.store)
    if store is None:
        raise ConfigError([f"stores: no store named {arguments.store!r}"])
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
    if status == 200:
        print("Follow it with: cryptum-bridge deliveries list --config ...")
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
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--config",
            type=Path,
            metavar="PATH",
            help="config file (default: $CRYPTUM_BRIDGE_CONFIG, else "
            "/etc/cryptum-bridge/config.toml)",
        )
        return sub

    demo = commands.add_parser(
        "demo",
        help="Play the whole flow against built-in simulators, in seconds.",
        description="Run the bridge with simulated Cryptum and WooCommerce on 127.0.0.1 and a "
        "temporary database, and show what happens to a few payments.",
    )
    demo.set_defaults(run=run_demo_command)

    serve = command("serve", "Run the daemon in the foreground.")
    serve.set_defaults(run=run_serve)

    check = command("check-config", "Validate the config and print it with secrets masked.")
    check.set_defaults(run=run_check_config)

    events = command("events", "List or show stored callbacks.")
    events.add_argument("--database", metavar="PATH", help="database file (default: from config)")
    events.add_argument("--json", action="store_true", help="machine-readable output")
    actions = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="newest events first")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--store", help="only this store's events")
    showing = actions.add_parser("show", help="one event with its payload")
    showing.add_argument("event_id", type=int, metavar="EVENT_ID")
    events.set_defaults(run=run_events)

    deliveries = command("deliveries", "List or show deliveries to WooCommerce.")
    deliveries.add_argument(
        "--database", metavar="PATH", help="database file (default: from config)"
    )
    deliveries.add_argument("--json", action="store_true", help="machine-readable output")
    actions = deliveries.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="newest deliveries first")
    listing.add_argument("--state", choices=["pending", "done", "skipped", "dead"])
    listing.add_argument("--store", help="only this store's deliveries")
    listing.add_argument("--limit", type=int, default=50)
    showing = actions.add_parser("show", help="one delivery")
    showing.add_argument("delivery_id", type=int, metavar="DELIVERY_ID")
    deliveries.set_defaults(run=run_deliveries)

    dead = command("dead-letter", "Deliveries that gave up: list them, or queue them again.")
    dead.add_argument("--database", metavar="PATH", help="database file (default: from config)")
    dead.add_argument("--json", action="store_true", help="machine-readable output")
    actions = dead.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="dead deliveries, newest first")
    listing.add_argument("--store", help="only this store's deliveries")
    listing.add_argument("--limit", type=int, default=50)
    retry = actions.add_parser("retry", help="queue one dead delivery, or --all, again")
    retry.add_argument("delivery_id", type=int, nargs="?", metavar="DELIVERY_ID")
    retry.add_argument("--all", action="store_true", help="every dead delivery")
    dead.set_defaults(run=run_dead_letter)

    doctor = command(
        "doctor", "Check the config, the database, each shop and Cryptum; say how to fix problems."
    )
    doctor.set_defaults(run=run_doctor_command)

    stats = command("stats", "Counts of deliveries by state, and the oldest one waiting.")
    stats.add_argument("--database", metavar="PATH", help="database file (default: from config)")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.set_defaults(run=run_stats)

    replay = command(
        "replay", "Deliver a stored callback again (a new note if it changes anything)."
    )
    replay.add_argument("--database", metavar="PATH", help="database file (default: from config)")
    replay.add_argument("event_id", type=int, metavar="EVENT_ID")
    replay.set_defaults(run=run_replay)

    tester = command(
        "send-test", "Sign a test callback with a store's secret and post it to the running bridge."
    )
    tester.add_argument("--store", required=True, help="the configured store to test")
    tester.add_argument("--order", required=True, metavar="WOO_ID", help="WooCommerce order id")
    tester.add_argument(
        "--status",
        required=True,
        help="payment status to report: pending, on-hold, confirmed, failed or cancelled",
    )
    tester.add_argument("--url", help="callback URL (default: from server.listen)")
    tester.add_argument(
        "--cryptum-order",
        metavar="ID",
        help="a real Cryptum order id (stores with an API key confirm every callback)",
    )
    tester.set_defaults(run=run_send_test)

    signer = command(
        "sign", "Print the X-Webhook-Signature value for a body, e.g. to test with curl."
    )
    signer.add_argument("body", nargs="?", metavar="FILE", help="body file (default: stdin)")
    signer.add_argument("--store", help="sign with this configured store's webhook secret")
    signer.add_argument("--secret-file", metavar="FILE", help="sign with the secret in FILE")
    signer.set_defaults(run=run_sign)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
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
