"""`cryptum-bridge plugin-zip`: the zip WordPress's "Upload Plugin" screen installs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from bridge import __version__
from bridge.plugin_zip import (
    INSTALLED_PLUGIN,
    PLUGIN_FOLDER,
    PluginNotFound,
    build_plugin_zip,
    plugin_files,
    plugin_source,
)

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "plugin-php"


def built(tmp_path: Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(build_plugin_zip(tmp_path))


def test_one_plugin_folder_with_every_runtime_file_and_no_tests(tmp_path: Path) -> None:
    names = built(tmp_path).namelist()
    assert all(name.startswith(f"{PLUGIN_FOLDER}/") for name in names)
    expected = {"cryptum-bridge.php", "uninstall.php", "readme.txt"} | {
        f"includes/{path.name}" for path in (PLUGIN / "includes").glob("*.php")
    }
    assert expected <= {name.removeprefix(f"{PLUGIN_FOLDER}/") for name in names}
    for left_out in ("tests/", "phpunit.xml.dist", "README.md"):
        assert not any(left_out in name for name in names), left_out


def test_the_zip_is_the_same_every_time(tmp_path: Path) -> None:
    first = build_plugin_zip(tmp_path / "a.zip").read_bytes()
    second = build_plugin_zip(tmp_path / "b.zip").read_bytes()
    assert first == second


def test_every_php_file_in_the_zip_lints(tmp_path: Path) -> None:
    if shutil.which("php") is None:
        pytest.skip("php not on PATH: install php-cli")
    built(tmp_path).extractall(tmp_path / "unzipped")
    files = sorted((tmp_path / "unzipped").rglob("*.php"))
    assert files
    for path in files:
        result = subprocess.run(["php", "-l", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_plugin_and_its_readme_carry_the_packages_version(tmp_path: Path) -> None:
    archive = built(tmp_path)
    header = archive.read(f"{PLUGIN_FOLDER}/cryptum-bridge.php").decode()
    readme = archive.read(f"{PLUGIN_FOLDER}/readme.txt").decode()
    assert re.search(rf"^\s*\*\s*Version:\s*{re.escape(__version__)}\s*$", header, re.M)
    assert re.search(rf"^Stable tag:\s*{re.escape(__version__)}\s*$", readme, re.M)
    for field in ("Requires at least", "Tested up to", "Requires PHP", "License"):
        assert re.search(rf"^{field}:\s*\S", readme, re.M), field


def test_an_installed_package_ships_every_file_the_zip_holds() -> None:
    """The data-files of pyproject.toml must cover the plugin, or an installed zip lacks files."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "data-files"
    ]
    installed = set()
    for folder, patterns in declared.items():
        for pattern in patterns:
            for path in ROOT.glob(pattern):
                installed.add(f"{folder}/{path.name}")
    zipped = {
        f"{INSTALLED_PLUGIN.as_posix()}/{name.removeprefix(PLUGIN_FOLDER + '/')}"
        for _, name in plugin_files(PLUGIN)
    }
    assert zipped == installed


def test_the_installed_copy_is_used_outside_a_checkout(tmp_path: Path) -> None:
    installed = tmp_path / INSTALLED_PLUGIN
    shutil.copytree(PLUGIN, installed)
    found = plugin_source(checkout=tmp_path / "no-checkout", prefix=tmp_path)
    assert found == installed
    with pytest.raises(PluginNotFound, match="not installed"):
        plugin_source(checkout=tmp_path / "no-checkout", prefix=tmp_path / "empty")


def test_the_command_writes_the_zip(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "plugin-zip", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    target = tmp_path / "cryptum-bridge.zip"
    assert str(target) in result.stdout
    assert zipfile.ZipFile(target).testzip() is None
