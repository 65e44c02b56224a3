#!/bin/sh
# Install or upgrade cryptum-bridge as a systemd service. Run as root from the
# repository checkout:   sudo sh systemd/install.sh
#
#   /opt/cryptum-bridge/venv             the program, in its own virtualenv (upgraded in place)
#   /usr/local/bin/cryptum-bridge        a link to the venv's program, so it is on PATH
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
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
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
# The program as the installed system sees it (without DESTDIR), and its link on PATH.
program=/opt/cryptum-bridge/venv/bin/cryptum-bridge
bin_link=$destdir/usr/local/bin/cryptum-bridge
# The database where the unit's StateDirectory= puts it.
database=/var/lib/cryptum-bridge/bridge.sqlite3

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
    # storage.path made explicit: the service finds the database through
    # $STATE_DIRECTORY, admin commands run by root have only the config.
    sed "s|^# path = \"$database\"\$|path = \"$database\"|" \
        "$source_dir/config.example.toml" > "$config_dir/config.toml.new"
    grep -q "^path = \"$database\"\$" "$config_dir/config.toml.new" \
        || die "config.example.toml has no '# path = \"$database\"' line to set"
    chmod 0644 "$config_dir/config.toml.new"
    mv "$config_dir/config.toml.new" "$config_dir/config.toml"
    config_note="created $config_dir/config.toml from the example"
fi
# Only root reads these; systemd hands them to the service (LoadCredential=),
# and admin commands run by root find them here beside the config.
install -d -m 0700 "$config_dir/credentials"

# On PATH for root: a link to the venv's program. A file there that is not
# such a link belongs to someone else (another install, a pip install) and
# stays as it is.
links_to_venv() {
    [ -L "$1" ] || return 1
    case "$(readlink "$1")" in
        "$program" | "$venv"/*) return 0 ;;
    esac
    return 1
}
if links_to_venv "$bin_link" || { [ ! -e "$bin_link" ] && [ ! -L "$bin_link" ]; }; then
    mkdir -p "$(dirname "$bin_link")"
    ln -sfn "$program" "$bin_link"
    link_note="linked $bin_link -> $program"
else
    link_note="left $bin_link alone: it is not a link to this install; run $program"
fi

say "Installed $("$venv/bin/cryptum-bridge" --version 2>/dev/null || echo cryptum-bridge)"
say "  $config_note"
say "  $link_note"

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
  3. Check the config, as root (it finds config.toml and credentials/ by itself):
       cryptum-bridge check-config
       cryptum-bridge doctor
  4. Start it, now and at boot, and watch it:
       systemctl daemon-reload && systemctl enable --now cryptum-bridge
       journalctl -u cryptum-bridge -o cat -f
  5. Admin commands run as root the same way, with no flag, e.g.:
       cryptum-bridge events list
       cryptum-bridge stats
See /opt/cryptum-bridge/docs/operations.md for upgrades, reloads and uninstalling.
STEPS
