"""cryptum-bridge: verifies, stores and delivers Cryptum payment callbacks to WooCommerce."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cryptum-bridge")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
