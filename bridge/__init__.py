"""cryptum-bridge: verifies, stores and delivers Cryptum payment callbacks to WooCommerce."""

# The one place the version is written; pyproject.toml reads it from here,
# so nothing has to look it up in the installed metadata at start.
__version__ = "0.1.0"
