"""With CI=true, a skip for want of what CI installs fails the run; other skips stay skips.

A small test file runs in a pytest of its own, with this suite's conftest
loaded as a plugin, once with CI=true and once without.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

TESTS = Path(__file__).resolve().parent

SKIPPING_TESTS = """
import pytest

from support import root_needed, tool_missing


@pytest.mark.skipif(True, reason=tool_missing("phpunit"))
def test_marked_for_a_missing_tool():
    pass


def test_skipping_for_a_missing_tool():
    pytest.skip(tool_missing("systemd-analyze"))


@pytest.fixture
def small_disk():
    pytest.skip(root_needed("mounting a small tmpfs"))


def test_needing_root(small_disk):
    pass


def test_skipping_for_another_reason():
    pytest.skip("systemd-analyze gave no exposure level here")


@pytest.mark.xfail(reason=tool_missing("php"))
def test_expected_to_fail():
    raise AssertionError


def test_passing():
    pass
"""


def outcomes(tmp_path: Path, ci: str | None) -> tuple[int, dict[str, str]]:
    """The exit code, and how each test ended as the JUnit report tells it."""
    (tmp_path / "test_skipping.py").write_text(SKIPPING_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    report = tmp_path / "report.xml"
    env = {name: value for name, value in os.environ.items() if name != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(TESTS.parent)])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "conftest",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            "test_skipping.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    ended = {}
    for case in ElementTree.parse(report).iter("testcase"):
        found = [child.tag for child in case if child.tag in ("skipped", "failure", "error")]
        ended[str(case.get("name"))] = found[0] if found else "passed"
    return result.returncode, ended


@pytest.mark.parametrize("ci", [None, "false", "1"])
def test_without_ci_true_every_skip_is_a_skip(tmp_path: Path, ci: str | None) -> None:
    code, ended = outcomes(tmp_path, ci)
    assert ended == {
        "test_marked_for_a_missing_tool": "skipped",
        "test_skipping_for_a_missing_tool": "skipped",
        "test_needing_root": "skipped",
        "test_skipping_for_another_reason": "skipped",
        "test_expected_to_fail": "skipped",  # JUnit's word for an expected failure
        "test_passing": "passed",
    }
    assert code == 0


def test_with_ci_true_a_skip_for_what_ci_installs_fails_the_run(tmp_path: Path) -> None:
    code, ended = outcomes(tmp_path, "true")
    assert ended == {
        # Skipped while setting up (a mark, a fixture): reported as errors.
        "test_marked_for_a_missing_tool": "error",
        "test_skipping_for_a_missing_tool": "failure",
        "test_needing_root": "error",
        "test_skipping_for_another_reason": "skipped",
        "test_expected_to_fail": "skipped",
        "test_passing": "passed",
    }
    assert code == 1


def test_the_failure_names_what_is_missing(tmp_path: Path) -> None:
    outcomes(tmp_path, "true")
    messages = {
        str(case.get("name")): [child.get("message") for child in case]
        for case in ElementTree.parse(tmp_path / "report.xml").iter("testcase")
    }
    assert messages["test_skipping_for_a_missing_tool"] == [
        "CI=true, but skipped: systemd-analyze not on PATH: install systemd"
    ]
