#!/bin/sh
# Install or upgrade cryptum-bridge as a systemd service. Run as root from the
# repository checkout:   sudo sh systemd/install.sh
#
#   /opt/cryptum-bridge/venv             the program, in its own virtualenv (upgraded in place)
#   /etc/systemd/system/cryptum-bridge.service
#   /etc/cryptum-bridge/config.toml      created from config.example.toml if missing, never overwritten
#   /etc/cryptum-bridge/credentials/     one file per secret (mode 0700 directory)
#
# Environment:
#   DESTDIR    install under this directory instead of / (staging, tests); then
#              systemctl is never called and nothing outside DESTDIR is touched
#   PYTHON     the interpreter the venv is made from (default python3, >= 3.11)
#   PIP_ARGS   extra pip options, e.g. "--no-index --find-links /srv/wheels" offline
set -eu

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}
case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; exit 2 ;;
esac

source_dir=$(cd "$(dirname "$0")/.." && pwd)
destdir=${DESTDIR:-}
python=${PYTHON:-python3}
prefix=$destdir/opt/cryptum-bridge
venv=$prefix/venv
config_dir=$destdir/etc/cryptum-bridge
unit_dir=$destdir/etc/systemd/system

say() { printf '%s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

[ -f "$source_dir/pyproject.toml" ] && [ -d "$source_dir/bridge" ] \
    || die "run me from a cryptum-bridge checkout ($source_dir has no pyproject.toml)"
if [ -z "$destdir" ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (or set DESTDIR to stage the files elsewhere)"
fi
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || die "$python is missing or older than Python 3.11 (set PYTHON=/path/to/python3.11)"

# The program. An existing venv is reused, so re-running this script upgrades
# in place; the daemon keeps running the old code until it is restarted.
if [ -x "$venv/bin/python" ]; then
    say "Upgrading $venv"
else
    say "Creating $venv"
    mkdir -p "$prefix"
    "$python" -m venv "$venv"
fi
# shellcheck disable=SC2086 # PIP_ARGS is a list of options, split on purpose
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade \
    ${PIP_ARGS:-} "$source_dir"
mkdir -p "$prefix/docs"
cp "$source_dir/docs/operations.md" "$prefix/docs/operations.md" 2>/dev/null || true

# The unit. Local changes belong in a drop-in (systemctl edit cryptum-bridge),
# which survives this file being replaced on upgrade.
mkdir -p "$unit_dir"
install -m 0644 "$source_dir/systemd/cryptum-bridge.service" "$unit_dir/cryptum-bridge.service"

# The configuration: never overwrite the owner's file; the example is always fresh.
# World-readable, because the dynamic user has no fixed id: keep secrets in
# credentials/, not inline.
install -d -m 0755 "$config_dir"
install -m 0644 "$source_dir/config.example.toml" "$config_dir/config.example.toml"
if [ -e "$config_dir/config.toml" ]; then
    config_note="kept $config_dir/config.toml (compare with config.example.toml for new keys)"
else
    install -m 0644 "$source_dir/config.example.toml" "$config_dir/config.toml"
    config_note="created $config_dir/config.toml from the example"
fi
# Only root reads these; systemd hands them to the service (LoadCredential=).
install -d -m 0700 "$config_dir/credentials"

say "Installed $("$venv/bin/cryptum-bridge" --version 2>/dev/null || echo cryptum-bridge)"
say "  $config_note"

if [ -n "$destdir" ]; then
    say "DESTDIR is set: systemctl not called."
    exit 0
fi
systemctl daemon-reload

if systemctl is-active --quiet cryptum-bridge; then
    say "
cryptum-bridge is running the previous version. Restart it to run this one:
  systemctl restart cryptum-bridge && journalctl -u cryptum-bridge -o cat -n 20"
    exit 0
fi

cat <<STEPS

Next steps:
  1. Edit /etc/cryptum-bridge/config.toml: your store(s), WooCommerce URL, and the
     secrets as files instead of inline values:
       webhook_secret_file = "webhook_secret"
       cryptum_api_key_file = "cryptum_api_key"
       woocommerce.consumer_key_file = "woocommerce_consumer_key"
       woocommerce.consumer_secret_file = "woocommerce_consumer_secret"
  2. Write one secret per file (no trailing newline needed), readable by root only:
       cd /etc/cryptum-bridge/credentials && umask 077
       printf '%s' 'whsec_…' > webhook_secret
       printf '%s' '…' > cryptum_api_key      # none? leave it empty: : > cryptum_api_key
       printf '%s' 'ck_…' > woocommerce_consumer_key
       printf '%s' 'cs_…' > woocommerce_consumer_secret
  3. Check the config with the credentials the service will see:
       CREDENTIALS_DIRECTORY=/etc/cryptum-bridge/credentials \\
         /opt/cryptum-bridge/venv/bin/cryptum-bridge check-config --config /etc/cryptum-bridge/config.toml
  4. Start it, now and at boot, and watch it:
       systemctl daemon-reload && systemctl enable --now cryptum-bridge
       journalctl -u cryptum-bridge -o cat -f
See /opt/cryptum-bridge/docs/operations.md for upgrades, reloads and uninstalling.
STEPS
