#!/bin/sh
# Install budget-watchdog as a systemd service (run as root). Idempotent: run it again to
# upgrade; an existing config and keys are never overwritten.
#
#   deploy/install.sh                 install into /opt/budget-watchdog, /etc, /etc/systemd
#   deploy/install.sh --uninstall     remove the service and the venv (config, keys and
#                                     state stay; add --purge to remove them too)
#   deploy/install.sh --prefix DIR    the venv's place (default /opt/budget-watchdog)
#   deploy/install.sh --destdir DIR   install under DIR as if it were / (tests, packaging);
#                                     DESTDIR=DIR in the environment works too
set -eu

PREFIX=/opt/budget-watchdog
DESTDIR=${DESTDIR:-}
ACTION=install
PURGE=no
SOURCE=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
SERVICE_USER=budget-watchdog

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX=$2; shift 2 ;;
        --prefix=*) PREFIX=${1#*=}; shift ;;
        --destdir) DESTDIR=$2; shift 2 ;;
        --destdir=*) DESTDIR=${1#*=}; shift ;;
        --uninstall) ACTION=uninstall; shift ;;
        --purge) PURGE=yes; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

ROOT=${DESTDIR%/}
VENV=$ROOT$PREFIX
ETC=$ROOT/etc/budget-watchdog
UNIT=$ROOT/etc/systemd/system/budget-watchdog.service
LIVE=no  # acting on the real system (not a DESTDIR), so users and systemctl apply
if [ -z "$ROOT" ]; then
    LIVE=yes
    if [ "$(id -u)" != 0 ]; then
        echo "install.sh: run as root (or give --destdir to install into a directory)" >&2
        exit 1
    fi
fi

say() { printf '%s\n' "$*"; }
systemd_running() { [ "$LIVE" = yes ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

if [ "$ACTION" = uninstall ]; then
    if systemd_running; then
        systemctl disable --now budget-watchdog.service 2>/dev/null || true
    fi
    rm -f "$UNIT"
    rm -rf "$VENV"
    if systemd_running; then systemctl daemon-reload; fi
    if [ "$PURGE" = yes ]; then
        rm -rf "$ETC" "$ROOT/var/lib/budget-watchdog" "$ROOT/var/lib/private/budget-watchdog"
        if [ "$LIVE" = yes ] && id "$SERVICE_USER" >/dev/null 2>&1; then
            userdel "$SERVICE_USER" 2>/dev/null || true
        fi
        say "budget-watchdog removed, with its config, keys and state."
    else
        say "budget-watchdog removed. Kept: $ETC (config, keys) and /var/lib/budget-watchdog"
        say "(history); run with --uninstall --purge to remove them too."
    fi
    exit 0
fi

say "==> virtualenv and package in $VENV"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet --upgrade "$SOURCE"
install -d -m 0755 "$VENV/share/doc/budget-watchdog"
install -m 0644 "$SOURCE/README.md" "$SOURCE/watchdog.example.toml" "$VENV/share/doc/budget-watchdog/"

say "==> service user $SERVICE_USER"
GROUP=root
if [ "$LIVE" = yes ]; then
    if ! id "$SERVICE_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir /var/lib/budget-watchdog \
            --shell /usr/sbin/nologin "$SERVICE_USER"
    fi
    GROUP=$SERVICE_USER
else
    say "    (skipped under --destdir)"
fi

say "==> config in $ETC"
install -d -m 0755 "$ETC"
install -d -m 0700 "$ETC/keys"
if [ ! -e "$ETC/watchdog.toml" ]; then
    install -m 0640 "$SOURCE/watchdog.example.toml" "$ETC/watchdog.toml"
    if [ "$LIVE" = yes ]; then chgrp "$GROUP" "$ETC/watchdog.toml"; fi
    say "    wrote $ETC/watchdog.toml from the example"
else
    say "    kept the existing $ETC/watchdog.toml"
fi

say "==> systemd unit $UNIT"
install -d -m 0755 "$(dirname "$UNIT")"
sed "s#/opt/budget-watchdog#$PREFIX#g" "$SOURCE/systemd/budget-watchdog.service" > "$UNIT.tmp"
chmod 0644 "$UNIT.tmp"
mv "$UNIT.tmp" "$UNIT"
if systemd_running; then systemctl daemon-reload; fi

cat <<NEXT

budget-watchdog $("$VENV/bin/budget-watchdog" --version | cut -d' ' -f2) is installed. Next:
  1. Put the key whose spend is watched in $ETC/keys/api_key
     (and, optionally, a management key in $ETC/keys/management_key); chmod 600 both.
  2. Set your limits in $ETC/watchdog.toml, then check it:
       $PREFIX/bin/budget-watchdog check-config --config /etc/budget-watchdog/watchdog.toml
  3. Start it and follow it:
       systemctl enable --now budget-watchdog
       systemctl status budget-watchdog; journalctl -u budget-watchdog -f
  4. Let batch jobs check the permit before they launch:
       $PREFIX/bin/budget-watchdog gate --cost 3 && python batch.py
NEXT
