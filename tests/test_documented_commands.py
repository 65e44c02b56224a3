"""Every `cryptum-bridge …` command line the docs show, or the program tells people to run, runs.

The lines come from README.md, docs/*.md, the steps systemd/install.sh
prints, and the hints in the program's own messages (string literals in
bridge/ such as send-test's "Follow it with: cryptum-bridge …"). A synopsis
(`events list [--store NAME] [--limit N]`) is run with and without its
optional parts and once per alternative; its placeholders (`NAME`, `ID`,
`PATH` …) get real values, and every config path the temporary config: the
example config filled in as an owner would. `CRYPTUM_BRIDGE_CONFIG` points
at it too, so a line without `--config` reads it.

Each line must get past argument parsing: no exit 2, no "unrecognized
arguments" or "invalid choice". Commands that need a running daemon or a
shop (send-test, doctor) may then fail at run time (exit 1); `serve` is
started for real and must come up and stop cleanly. A bare mention of a
command (`cryptum-bridge send-test`, as in "use `cryptum-bridge send-test`")
must name a command that exists.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.storage import SqliteStorage

from support import CONFIGURED_SECRETS, callback_body, config_document, to_toml

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = "cryptum-bridge"
# The owner's values in place of config.example.toml's placeholders.
FILLED_IN = {
    "whsec_change_me": "whsec_documented_commands_5e1c9a7b",
    "ck_change_me": "ck_documented_commands_key",
    "cs_change_me": "cs_documented_commands_secret",
}
CONFIGURED_SECRETS.update(FILLED_IN.values())
# What a placeholder of a synopsis stands for, when no option decides it.
METAVARIABLES = {
    "NAME": "main",
    "WOO_ID": "12",
    "STATUS": "confirmed",
    "ID": "1",
    "EVENT_ID": "1",
    "DELIVERY_ID": "1",
    "N": "5",
    "S": "pending",
}
PARSE_ERRORS = ("unrecognized arguments", "invalid choice", "expected one argument")


@dataclass(frozen=True)
class Documented:
    """One command line and where it is written."""

    where: str
    text: str

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"


# Extraction


def _command_after_launcher(tokens: list[str]) -> list[str] | None:
    """The arguments after `cryptum-bridge` when the tokens run it (sudo, env, VAR=… first)."""
    rest = list(tokens)
    while rest:
        token = rest[0]
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", token) or token in ("sudo", "env"):
            rest.pop(0)
        elif token == "-u" and len(rest) > 1:
            del rest[:2]
        else:
            break
    if rest and (rest[0] == PROGRAM or rest[0].endswith("/" + PROGRAM)):
        return rest[1:]
    return None


def _shell_commands(line: str) -> Iterator[str]:
    """The cryptum-bridge commands a line of shell runs, as text."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote in prose-like lines
        return
    segment: list[str] = []
    for token in [*tokens, ";"]:
        if token and set(token) <= set("();<>|&"):
            arguments = _command_after_launcher(segment)
            if arguments is not None:
                yield shlex.join([PROGRAM, *arguments])
            segment = []
        elif token.endswith("$") and token[:-1].endswith("="):
            segment = []  # `name=$(`: a command substitution begins
        else:
            segment.append(token)


def _fenced_lines(text: str) -> Iterator[str]:
    """Lines of fenced code blocks, backslash continuations joined."""
    in_block = False
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_block = not in_block
            continue
        if not in_block:
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield pending + line
        pending = ""


def _without_fences(text: str) -> str:
    return re.sub(r"^\s*```.*?^\s*```", "", text, flags=re.DOTALL | re.MULTILINE)


def from_markdown(path: Path) -> Iterator[Documented]:
    text = path.read_text()
    where = str(path.relative_to(ROOT))
    for line in _fenced_lines(text):
        for command in _shell_commands(line):
            yield Documented(where, command)
    # Inline code may wrap across lines.
    for span in re.findall(r"`([^`]+)`", _without_fences(text)):
        span = " ".join(span.split())
        if span.startswith((f"{PROGRAM} ", f"sudo {PROGRAM} ")):
            yield Documented(where, span.removeprefix("sudo "))


def from_install_script(path: Path) -> Iterator[Documented]:
    """The steps install.sh prints when it is done."""
    text = path.read_text()
    (steps,) = re.findall(r"^cat <<STEPS$(.*?)^STEPS$", text, flags=re.DOTALL | re.MULTILINE)
    for line in steps.replace("\\\\\n", " ").splitlines():
        for command in _shell_commands(line):
            yield Documented(str(path.relative_to(ROOT)), command)


def _literal_strings(tree: ast.AST) -> Iterator[str]:
    """String literals and f-strings (each `{…}` kept as `{}`), docstrings left out."""
    # Docstrings, and the literal pieces of f-strings (read whole, below).
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                skipped.add(id(body[0].value))
        elif isinstance(node, ast.JoinedStr):
            skipped.update(id(part) for part in node.values)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            yield "".join(
                str(part.value) if isinstance(part, ast.Constant) else "{}" for part in node.values
            )
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in skipped
        ):
            yield node.value


# A hint names the command where a person would read it as one: at the start
# of a message, after a colon, in backticks or parentheses, after sudo; and
# followed by arguments, not by a colon ("cryptum-bridge demo: the bridge …").
_HINT = re.compile(
    rf"(?:^|: |`|\(|sudo ){PROGRAM} ([a-z][a-z-]*(?=[\s`)]|$)[^`)\n]*)", flags=re.MULTILINE
)


def from_program_hints(package: Path) -> Iterator[Documented]:
    for path in sorted(package.rglob("*.py")):
        if "simulators" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        for text in _literal_strings(tree):
            for match in _HINT.finditer(text):
                command = match.group(1).rstrip(" .,;")
                # f-strings are split at their fields; a literal that ends
                # inside a command has nothing of it after the field.
                yield Documented(str(path.relative_to(ROOT)), f"{PROGRAM} {command}")


def documented_commands() -> list[Documented]:
    found = [
        *from_markdown(ROOT / "README.md"),
        *itertools.chain.from_iterable(
            from_markdown(path) for path in sorted((ROOT / "docs").glob("*.md"))
        ),
        *from_install_script(ROOT / "systemd" / "install.sh"),
        *from_program_hints(ROOT / "bridge"),
    ]
    unique: dict[str, Documented] = {}
    for documented in found:
        unique.setdefault(documented.text, documented)
    return list(unique.values())


# Synopses: optional parts and alternatives


def _expand(text: str) -> list[str]:
    """Every concrete form of a synopsis: each [optional] part in or out, each (a | b)."""
    text = text.replace("\\|", "|")
    match = re.search(r"\[([^\[\]]*)\]|\(([^()]*\|[^()]*)\)", text)
    if match is None:
        return [" ".join(text.split())]
    before, after = text[: match.start()], text[match.end() :]
    if match.group(1) is not None:
        choices = [match.group(1), ""]
    else:
        choices = [choice.strip() for choice in match.group(2).split("|")]
    return [form for choice in choices for form in _expand(before + choice + after)]


def _forms(documented: Documented) -> list[str]:
    # Only a synopsis (in the docs' tables) has optional parts; all-in and all-out suffice.
    forms = _expand(documented.text)
    return sorted(set(forms), key=forms.index)


# Running


@dataclass
class Setup:
    config: Path
    database: Path
    body: Path
    secret: Path
    directory: Path


def _values(arguments: list[str], setup: Setup) -> list[str]:
    """The synopsis' placeholders and the documented paths, made real."""
    given: list[str] = []
    previous = ""
    for argument in arguments:
        if previous == "--config":
            value = str(setup.config)
        elif previous == "--database":
            value = str(setup.database)
        elif previous == "--secret-file":
            value = str(setup.secret)
        elif previous == "--url":
            value = "http://127.0.0.1:9/callbacks/cryptum/main"
        elif argument == "FILE":
            value = str(setup.body)
        elif argument == "PATH":
            value = str(setup.directory / "output")
        elif argument.startswith("~/"):
            value = str(setup.directory / argument.removeprefix("~/"))
        elif argument == "{}" or argument in METAVARIABLES:
            value = METAVARIABLES.get(argument, "1")
        elif re.fullmatch(r"[A-Z][A-Z_]*", argument):
            raise AssertionError(f"no value known for the placeholder {argument}")
        else:
            value = argument
        given.append(value)
        previous = argument
    return given


def _run_in_process(arguments: list[str], setup: Setup) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    stdin = io.TextIOWrapper(io.BytesIO(setup.body.read_bytes()))
    real_stdin = sys.stdin
    sys.stdin = stdin
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(arguments)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 2
    finally:
        sys.stdin = real_stdin
    return code, err.getvalue()


def _run_serve(arguments: list[str], setup: Setup) -> tuple[int, str]:
    """Start the daemon as documented, wait until it listens, stop it with SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CRYPTUM_BRIDGE_CONFIG": str(setup.config)},
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        started = False
        while time.monotonic() < deadline and not started:
            line = process.stdout.readline()
            if not line:
                break
            started = line.startswith("{") and json.loads(line)["event"] == "server.started"
        if started:
            process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    err = process.stderr.read()
    assert started, f"serve did not start: {err}"
    return code, err


async def _one_event(database: Path) -> None:
    from bridge.storage import NewEvent

    opened = await SqliteStorage.open(database)
    try:
        await opened.record_event(
            NewEvent(
                store="main",
                body_sha256=b"\x07" * 32,
                source="callback",
                signature_form="json",
                request_id=None,
                cryptum_order_id="documented-order",
                woo_order_id="12",
                status="confirmed",
                payload=b"{}",
            )
        )
    finally:
        await opened.close()


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Setup:
    """The example config filled in, a database with one event, a body and a secret file."""
    text = (ROOT / "config.example.toml").read_text()
    for placeholder, value in FILLED_IN.items():
        assert f'"{placeholder}"' in text, placeholder
        text = text.replace(f'"{placeholder}"', f'"{value}"')
    database = tmp_path / "bridge.sqlite3"
    # This machine's own: a free port, nothing listening where the shop is, a
    # database of the test's.
    text = text.replace('listen = "127.0.0.1:8787"', 'listen = "127.0.0.1:0"')
    text = text.replace(
        'woocommerce.url = "http://127.0.0.1:8080"', 'woocommerce.url = "http://127.0.0.1:9"'
    )
    text = text.replace("[storage]\n", f'[storage]\npath = "{database}"\n', 1)
    text = text.replace('format = "auto"', 'format = "json"', 1)
    config = tmp_path / "config.toml"
    config.write_text(text)
    asyncio.run(_one_event(database))
    body = tmp_path / "body.json"
    body.write_bytes(callback_body(woo_order_id="12"))
    secret = tmp_path / "secret"
    secret.write_text(FILLED_IN["whsec_change_me"])
    monkeypatch.setenv("CRYPTUM_BRIDGE_CONFIG", str(config))
    monkeypatch.chdir(tmp_path)  # whatever a command writes by a relative name lands here
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    return Setup(config, database, body, secret, tmp_path)


DOCUMENTED = documented_commands()


def test_the_docs_and_hints_are_found() -> None:
    """The extraction itself: it must see the lines this test exists for."""
    texts = {documented.text for documented in DOCUMENTED}
    wheres = {documented.where for documented in DOCUMENTED}
    for expected in (
        "cryptum-bridge serve --config config.toml",
        "cryptum-bridge events list --config config.toml",
        "cryptum-bridge sign --config config.toml --store main",
        "cryptum-bridge check-config",
        "cryptum-bridge events list --json --config PATH",
        "cryptum-bridge --config PATH events list --json",
    ):
        assert expected in texts, expected
    assert {"README.md", "docs/operations.md"} <= wheres
    assert {"cryptum-bridge check-config", "cryptum-bridge events list"} <= {
        documented.text for documented in from_install_script(ROOT / "systemd" / "install.sh")
    }
    hints = {documented.where for documented in from_program_hints(ROOT / "bridge")}
    assert "bridge/cli.py" in hints  # send-test's "Follow it with: …"
    assert "bridge/doctor.py" in hints  # "(sudo cryptum-bridge doctor)"
    assert "bridge/demo.py" in hints  # "Next: `cryptum-bridge serve …`"
    assert any(text.startswith("cryptum-bridge send-test --store") for text in texts)
    assert any("(--store NAME | --secret-file FILE)" in t.replace("\\|", "|") for t in texts)


def _run_subprocess(arguments: list[str], setup: Setup) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "bridge", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "CRYPTUM_BRIDGE_CONFIG": str(setup.config)},
    )
    return result.returncode, result.stderr


def _command_of(arguments: list[str]) -> str | None:
    """The subcommand: the first argument that is neither an option nor --config's value."""
    skip = False
    for argument in arguments:
        if skip:
            skip = False
        elif argument == "--config":
            skip = True
        elif not argument.startswith("-"):
            return argument
    return None


def _runner(command: str | None) -> Callable[[list[str], Setup], tuple[int, str]]:
    if command == "serve":
        return _run_serve
    if command == "demo":
        return _run_subprocess  # it sends the process's logs to a file of its own
    return _run_in_process


@pytest.mark.parametrize("documented", DOCUMENTED, ids=str)
def test_a_documented_command_line_runs(setup: Setup, documented: Documented) -> None:
    for form in _forms(documented):
        arguments = _values(shlex.split(form)[1:], setup)
        command = _command_of(arguments)
        code, err = _runner(command)(arguments, setup)
        context = f"{documented.where}: {form}\n{err}"
        assert not any(error in err for error in PARSE_ERRORS), context
        if len(arguments) == 1 and "the following arguments are required" in err:
            continue  # a mention of a command by its name: it exists
        assert code != 2, context
        if command in ("serve", "demo"):
            assert code == 0, context


def test_a_command_line_that_stops_parsing_is_caught(setup: Setup) -> None:
    """What the test above asserts fails for a line the program refuses."""
    for form in ("cryptum-bridge events list --jsn", "cryptum-bridge event list"):
        code, err = _run_in_process(_values(shlex.split(form)[1:], setup), setup)
        assert code == 2 and any(error in err for error in PARSE_ERRORS)


def test_the_readmes_example_errors_are_what_check_config_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (ROOT / "README.md").read_text()
    (block,) = re.findall(r"naming the key.*?\n```\n(.*?)```", readme, flags=re.DOTALL)
    document = config_document(tmp_path / "bridge.sqlite3")
    document["stores"][0]["woocommerce"]["url"] = "ftp://shop"
    document["stores"][0]["woocommerce"]["consumer_key"] = "ck_change_me"
    del document["stores"][1]["webhook_secret"]
    document["stores"][1]["cryptum_api_key"] = ""
    config = tmp_path / "config.toml"
    config.write_text(to_toml(document))
    assert main(["check-config", "--config", str(config)]) == 2
    assert capsys.readouterr().err == block
