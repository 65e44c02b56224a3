"""The package's layers, read from the source: what may import what.

The decision modules are pure (no I/O, so each is tested row by row without
a server or a file), and the simulators share no code with the product
(a simulator built on the product's own code would agree with its mistakes).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The protocol and the decisions: no I/O, no logging, no clock of their own.
PURE = (
    "backoff",
    "confirmation",
    "cryptum_models",
    "delivery_outcome",
    "delivery_plan",
    "mysql_checks",
    "mysql_url",
    "oauth1",
    "payload",
    "signature",
    "status_rules",
    "text",
    "upstream",
    "url_path",
    "woocommerce_errors",
    "woocommerce_models",
)
# What a pure module may import besides the other pure modules.
PURE_MAY_IMPORT = {
    "__future__",
    "base64",
    "binascii",
    "collections.abc",
    "dataclasses",
    "decimal",
    "enum",
    "hashlib",
    "hmac",
    "json",
    "pydantic",
    "pydantic_core",
    "re",
    "secrets",  # oauth1: a fresh nonce, when the caller passes none
    "time",  # oauth1: the timestamp, when the caller passes none
    "typing",
    "urllib.parse",
}


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, relative imports resolved within its package."""
    package = path.parent.name
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            found.add(f"{package}.{module}" if node.level else module)
    return found


def package_modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("name", PURE)
def test_a_decision_module_imports_nothing_that_does_io(name: str) -> None:
    allowed = PURE_MAY_IMPORT | {f"bridge.{other}" for other in PURE}
    imported = imported_modules(ROOT / "bridge" / f"{name}.py")
    assert imported - allowed == set()


def test_the_simulators_share_no_code_with_the_product() -> None:
    for path in package_modules("bridge_simulators"):
        product = {m for m in imported_modules(path) if m == "bridge" or m.startswith("bridge.")}
        assert product == set(), path.name


def test_only_the_demo_runs_the_simulators() -> None:
    users = {
        path.name
        for path in package_modules("bridge")
        if any(m.startswith("bridge_simulators") for m in imported_modules(path))
    }
    assert users == {"demo.py"}


def test_the_import_check_sees_relative_imports() -> None:
    imported = imported_modules(ROOT / "bridge" / "delivery_plan.py")
    assert "bridge.status_rules" in imported


# SQL in a string literal, or a database driver imported: storage's alone.
_SQL = re.compile(
    r"\b(SELECT\b.+\bFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM"
    r"|CREATE\s+(TABLE|INDEX|TRIGGER)|PRAGMA\s+\w+)",
    re.IGNORECASE | re.DOTALL,
)
_DRIVERS = {"sqlite3", "aiosqlite", "asyncmy", "aiomysql", "pymysql"}


def sql_in(path: Path) -> list[str]:
    """The string literals of `path` that hold SQL, and the drivers it imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = [
        node.value.strip()[:60]
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and _SQL.search(node.value)
    ]
    return found + sorted(_DRIVERS & {m.split(".")[0] for m in imported_modules(path)})


def test_no_module_outside_storage_holds_sql_or_a_driver() -> None:
    storage = ROOT / "bridge" / "storage"
    offenders = {
        str(path.relative_to(ROOT)): sql_in(path)
        for path in package_modules("bridge")
        if storage not in path.parents and sql_in(path)
    }
    assert offenders == {}


def test_the_sql_check_finds_sql_and_drivers() -> None:
    assert sql_in(ROOT / "bridge" / "storage" / "sqlite_queue.py")
    assert "aiosqlite" in sql_in(ROOT / "bridge" / "storage" / "sqlite.py")


# A function longer than this is read in two sittings: split it.
LONGEST_FUNCTION_LINES = 60


def test_every_function_reads_in_one_sitting() -> None:
    too_long = {}
    for package in ("bridge", "bridge_simulators"):
        for path in package_modules(package):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    assert node.end_lineno is not None
                    lines = node.end_lineno - node.lineno + 1
                    if lines > LONGEST_FUNCTION_LINES:
                        too_long[f"{path.relative_to(ROOT)}:{node.name}"] = lines
    assert too_long == {}
