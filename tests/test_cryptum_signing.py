"""The simulated Cryptum's signing against the shared vectors and the documented rule.

Every positive vector carries the reference plugin's canonical form and
signature (`php_regex_canonical`, `php_regex_signature`): Cryptum signs with
that rule, so the simulator must reproduce both, byte for byte, including the
vector where the rule and JSON disagree. The simulator's signing must not lean
on the bridge's own code, or a shared mistake would go unseen.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

import bridge_simulators
from bridge_simulators.cryptum_signing import reference_canonical, sign

VECTORS_FILE = Path(__file__).parent / "vectors" / "cryptum-signature-vectors.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_FILE.read_text())
SIMULATORS = Path(bridge_simulators.__file__).parent


def by_name(vectors: list[dict[str, Any]]) -> Any:
    return pytest.mark.parametrize("vector", vectors, ids=[vector["name"] for vector in vectors])


@by_name(VECTORS["positive"])
def test_the_reference_canonical_form_of_every_positive_vector(vector: dict[str, Any]) -> None:
    body = vector["body"].encode()
    assert reference_canonical(body) == vector["php_regex_canonical"].encode()


@by_name(VECTORS["positive"])
def test_the_reference_signature_of_every_positive_vector(vector: dict[str, Any]) -> None:
    assert sign(vector["body"].encode(), vector["secret"]) == vector["php_regex_signature"]


def test_the_vectors_include_one_where_the_reference_rule_and_json_disagree() -> None:
    # Else the tests above could not tell the reference rule from the JSON-aware one.
    disagreeing = [
        vector
        for vector in VECTORS["positive"]
        if vector["signature"] != vector["php_regex_signature"]
    ]
    assert disagreeing
    for vector in disagreeing:
        assert sign(vector["body"].encode(), vector["secret"]) != vector["signature"]


@by_name(VECTORS["negative"])
def test_no_negative_vector_carries_the_simulators_signature(vector: dict[str, Any]) -> None:
    assert vector["must_verify"] is False
    assert sign(vector["body"].encode(), vector["secret"]) != vector["signature"]


@pytest.mark.parametrize(
    ("body", "canonical"),
    [
        (b'{ "a" : "b c" }', b'{"a":"b c"}'),
        # Every white-space byte the rule names, \v and \f included.
        (b'{\x0b"a":\x0c1,\t"b":\r\n2 }', b'{"a":1,"b":2}'),
        # Followed by one quote (odd): kept; followed by none (even): dropped.
        (b'" a "b c', b'" a "bc'),
        # The escaped quote counts as a quote: the space before it is followed by
        # two quotes and dropped, the one after it by one quote and kept.
        (b'{"m":"x \\" y"}', b'{"m":"x\\" y"}'),
        (b"", b""),
        (b" \t", b""),
    ],
)
def test_the_rule_worked_by_hand(body: bytes, canonical: bytes) -> None:
    assert reference_canonical(body) == canonical


def imported_modules(path: Path) -> set[str]:
    """Every module a file under `bridge/simulators/` imports, relative imports resolved."""
    package = ["bridge", "simulators"]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*parts, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_no_simulator_signs_with_the_bridges_code() -> None:
    for path in sorted(SIMULATORS.glob("*.py")):
        product = {
            name
            for name in imported_modules(path)
            if name.startswith(("bridge.signature", "bridge.oauth1"))
        }
        assert not product, f"{path.name} imports {sorted(product)}"
