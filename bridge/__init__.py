"""cryptum-bridge: verifies, stores and delivers Cryptum payment callbacks to WooCommerce."""

# The one place the version is written; pyproject.toml reads it from here.
# (importlib.metadata would cost the daemon about 1 MiB of memory to look it up.)
__version__ = "0.1.0"
