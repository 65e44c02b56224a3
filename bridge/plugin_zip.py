"""`cryptum-bridge plugin-zip`: the WordPress plugin as the zip "Upload Plugin" takes.

One folder, `cryptum-bridge/`, holding the plugin's PHP files and its
`readme.txt`; never its tests or developer files. The plugin's files come
from the checkout (`plugin-php/` beside `bridge/`) or, for an installed
package, from `share/cryptum-bridge/plugin-php` under the environment's
prefix, where the package installs them. Entries carry a fixed date, so the
same files always make the same zip.
"""

from __future__ import annotations

import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "INSTALLED_PLUGIN",
    "PLUGIN_FOLDER",
    "ZIP_NAME",
    "PluginNotFound",
    "build_plugin_zip",
    "plugin_files",
    "plugin_source",
]

PLUGIN_FOLDER = "cryptum-bridge"
ZIP_NAME = "cryptum-bridge.zip"
# Everything in the plugin's folder goes in but these: the tests and their
# configuration, the developers' README, and hidden files (caches, editors').
_LEFT_OUT = frozenset({"tests", "phpunit.xml.dist", "README.md"})
# 1980-01-01, the earliest date a zip entry can hold.
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)


class PluginNotFound(Exception):
    """Neither a checkout nor an installed package holds the plugin's files."""


CHECKOUT_PLUGIN = Path(__file__).resolve().parent.parent / "plugin-php"
INSTALLED_PLUGIN = Path("share") / "cryptum-bridge" / "plugin-php"  # under the prefix


def plugin_source(*, checkout: Path = CHECKOUT_PLUGIN, prefix: Path | None = None) -> Path:
    """Where the plugin's files are: the checkout's `plugin-php/`, else the installed copy."""
    candidates = (checkout, (prefix or Path(sys.prefix)) / INSTALLED_PLUGIN)
    for candidate in candidates:
        if (candidate / "cryptum-bridge.php").is_file():
            return candidate
    raise PluginNotFound(
        "the WordPress plugin's files are not installed: looked in "
        + " and ".join(str(c) for c in candidates)
    )


def plugin_files(source: Path) -> Iterator[tuple[Path, str]]:
    """Each file of the plugin and its name inside the zip, in a stable order."""
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if relative.parts[0] in _LEFT_OUT or any(p.startswith(".") for p in relative.parts):
            continue
        if path.is_file():
            yield path, f"{PLUGIN_FOLDER}/{relative.as_posix()}"


def build_plugin_zip(destination: Path, source: Path | None = None) -> Path:
    """Write the zip at `destination` (a file, or a folder to put `cryptum-bridge.zip` in)."""
    source = source or plugin_source()
    target = destination / ZIP_NAME if destination.is_dir() else destination
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        folder = zipfile.ZipInfo(f"{PLUGIN_FOLDER}/", date_time=_FIXED_DATE)
        folder.external_attr = 0o40755 << 16
        archive.writestr(folder, b"")
        for path, name in plugin_files(source):
            entry = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
            entry.external_attr = 0o100644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, path.read_bytes())
    # A zip half written (a full disk) is never left under the final name.
    partial.replace(target)
    return target
