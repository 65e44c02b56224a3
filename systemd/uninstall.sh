#!/bin/sh
# Remove cryptum-bridge installed by systemd/install.sh. Run as root:
#   sudo sh systemd/uninstall.sh            stop it, remove the unit, the program and its
#                                           link on PATH; keep the config, credentials and database
#   sudo sh systemd/uninstall.sh --purge    also delete /etc/cryptum-bridge and
#                                           /var/lib/cryptum-bridge (the database)
# DESTDIR works as for install.sh: no systemctl, nothing touched outside it.
set -eu

purge=no
case "${1:-}" in
    --purge) purge=yes ;;
    "") ;;
    -h | --help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

destdir=${DESTDIR:-}
unit=$destdir/etc/systemd/system/cryptum-bridge.service
dropins=$destdir/etc/systemd/system/cryptum-bridge.service.d
prefix=$destdir/opt/cryptum-bridge
config_dir=$destdir/etc/cryptum-bridge
bin_link=$destdir/usr/local/bin/cryptum-bridge
# With DynamicUser= the state really lives in /var/lib/private/cryptum-bridge;
# /var/lib/cryptum-bridge is a symlink to it.
state_dirs="$destdir/var/lib/cryptum-bridge $destdir/var/lib/private/cryptum-bridge"

if [ -z "$destdir" ] && [ "$(id -u)" -ne 0 ]; then
    echo "uninstall.sh: run as root (or set DESTDIR)" >&2
    exit 1
fi

if [ -z "$destdir" ]; then
    systemctl disable --now cryptum-bridge 2>/dev/null || true
fi
rm -f "$unit"
# The link install.sh made, and only that: a cryptum-bridge on PATH that is
# not a link into this venv belongs to someone else.
if [ -L "$bin_link" ]; then
    case "$(readlink "$bin_link")" in
        /opt/cryptum-bridge/venv/* | "$prefix"/venv/*)
            rm -f "$bin_link"
            echo "Removed $bin_link"
            ;;
        *) echo "Kept $bin_link: it does not point into $prefix/venv" ;;
    esac
fi
rm -rf "$prefix"
echo "Removed the unit and $prefix"

if [ "$purge" = yes ]; then
    # shellcheck disable=SC2086 # two paths, split on purpose
    rm -rf "$dropins" "$config_dir" $state_dirs
    echo "Purged $config_dir (config and credentials) and the database in $destdir/var/lib"
else
    echo "Kept $config_dir (config.toml, credentials/) and the database in" \
        "$destdir/var/lib/cryptum-bridge; remove them with --purge."
    if [ -d "$dropins" ]; then
        echo "Kept your drop-ins in $dropins."
    fi
fi

if [ -z "$destdir" ]; then
    systemctl daemon-reload
    systemctl reset-failed cryptum-bridge 2>/dev/null || true
fi
