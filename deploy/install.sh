#!/usr/bin/env bash
# Install budget-watchdog as a systemd service (run as root). Idempotent and self-repairing:
# run it again to upgrade, or after a failed run; an existing config and keys are never
# overwritten. See usage() below, or run it with --help.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # `sh install.sh` works too
set -euo pipefail
umask 022  # the venv and the unit must be readable by the service user and by systemd

usage() {
    cat <<'USAGE'
Usage: deploy/install.sh [--prefix DIR] [--python PATH] [--destdir DIR] [--state-url-file FILE]
       deploy/install.sh --uninstall [--purge] [--prefix DIR] [--destdir DIR]

  (no option)      install or upgrade: a venv in /opt/budget-watchdog, the budget-watchdog
                   system user, /etc/budget-watchdog (config, keys/) and the systemd unit;
                   restarts the service when it is running and the code or unit changed
  --uninstall      remove the unit and the venv; config, keys and state stay
  --purge          with --uninstall only: also remove config, keys, state and the user
  --prefix DIR     the venv's place (default /opt/budget-watchdog)
  --state-url-file FILE
                   keep the state in PostgreSQL, shared with other hosts: FILE holds the
                   postgresql:// URL with its password (one line). It is installed as
                   /etc/budget-watchdog/keys/state_url (0600 root; the unit passes it to the
                   service as the credential state_url), never printed, and a `path` in the
                   config's [state] is commented out (a state is kept in one place)
  --python PATH    the Python the venv is made from (default: the first usable of
                   /usr/bin/python3, /usr/local/bin/python3, python3 on PATH; one under
                   /root, /home or /run/user is refused: the unit has ProtectHome=yes)
  --destdir DIR    install under DIR as if it were /, for tests and staging (also DESTDIR=DIR).
                   No user is created and systemctl is not called. The venv under DIR runs
                   only from DIR: a venv cannot be moved, so this is not a packaging aid.
                   BUDGET_WATCHDOG_USER=NAME (an existing user; as root) checks that NAME
                   can run the venv and makes the config readable by NAME's group.

pip's own settings (PIP_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX, pip.conf) apply to the
package and dependency install, e.g. for an offline wheelhouse.
USAGE
}

die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'install.sh: %s (see --help)\n' "$*" >&2; exit 2; }
say() { printf '%s\n' "$*"; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }

PREFIX=/opt/budget-watchdog
DESTDIR=${DESTDIR:-}
ACTION=install
PURGE=no
PYTHON=${PYTHON:-}
STATE_URL_FILE=
SERVICE_USER=budget-watchdog
SOURCE=$(cd "$(dirname "$0")/.." && pwd)

need_value() { if [ $# -lt 2 ] || [ -z "$2" ]; then usage_error "$1 needs a value"; fi; }
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) need_value "$@"; PREFIX=$2; shift 2 ;;
        --prefix=*) PREFIX=${1#*=}; shift ;;
        --destdir) need_value "$@"; DESTDIR=$2; shift 2 ;;
        --destdir=*) DESTDIR=${1#*=}; shift ;;
        --python) need_value "$@"; PYTHON=$2; shift 2 ;;
        --python=*) PYTHON=${1#*=}; shift ;;
        --state-url-file) need_value "$@"; STATE_URL_FILE=$2; shift 2 ;;
        --state-url-file=*) STATE_URL_FILE=${1#*=}; shift ;;
        --uninstall) ACTION=uninstall; shift ;;
        --purge) PURGE=yes; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage_error "unknown option $1" ;;
    esac
done
if [ "$PURGE" = yes ] && [ "$ACTION" != uninstall ]; then
    usage_error "--purge only goes with --uninstall"
fi
if [ -n "$STATE_URL_FILE" ] && [ "$ACTION" != install ]; then
    usage_error "--state-url-file goes with an install, not --uninstall"
fi
# Why FILE cannot be the state's URL, or nothing when it can. Checked before anything is
# installed; nothing here prints the file's content (the URL holds a password).
state_url_problem() {
    local file=$1 lines first
    if [ ! -f "$file" ] || [ ! -r "$file" ]; then say "not a readable file"; return 0; fi
    lines=$(grep -c '[^[:space:]]' -- "$file" || true)
    if [ "$lines" != 1 ]; then
        say "must hold one line, the postgresql:// URL (it has $lines that are not blank)"
        return 0
    fi
    first=$(grep -m 1 '[^[:space:]]' -- "$file" | sed $'s/^\xEF\xBB\xBF//; s/^[[:space:]]*//')
    case "$first" in
        postgresql://*|postgres://*) ;;
        *) say "does not hold a postgresql:// (or postgres://) URL" ;;
    esac
}
if [ -n "$STATE_URL_FILE" ]; then
    why=$(state_url_problem "$STATE_URL_FILE")
    [ -z "$why" ] || usage_error "--state-url-file $STATE_URL_FILE: $why"
fi
case "$PREFIX" in
    *[!A-Za-z0-9._/+-]*) usage_error "--prefix: use letters, digits and . _ / + - only, not '$PREFIX'" ;;
    /?*) PREFIX=${PREFIX%/} ;;
    *) usage_error "--prefix must be an absolute directory other than /, not '$PREFIX'" ;;
esac

ROOT=${DESTDIR%/}
if [ -n "$DESTDIR" ] && [ -z "$ROOT" ]; then usage_error "--destdir / is the live system: omit it"; fi
VENV=$ROOT$PREFIX
ETC=$ROOT/etc/budget-watchdog
STATE=$ROOT/var/lib/budget-watchdog
UNIT=$ROOT/etc/systemd/system/budget-watchdog.service
LIVE=no  # acting on the real system (not a DESTDIR), so users and systemctl apply
RUN_AS=  # the user the venv is checked as (runuser); empty: permission bits only
if [ -z "$ROOT" ]; then
    LIVE=yes
    [ "$(id -u)" = 0 ] || die "run as root (or give --destdir DIR to install into a directory)"
    case "$PREFIX/" in
        /root/*|/home/*|/run/user/*)
            usage_error "--prefix $PREFIX: the unit's ProtectHome=yes hides /root, /home and /run/user" ;;
    esac
    if [ -n "${BUDGET_WATCHDOG_USER:-}" ] && [ "$BUDGET_WATCHDOG_USER" != "$SERVICE_USER" ]; then
        usage_error "BUDGET_WATCHDOG_USER applies only with --destdir (the unit runs as $SERVICE_USER)"
    fi
elif [ -n "${BUDGET_WATCHDOG_USER:-}" ]; then
    SERVICE_USER=$BUDGET_WATCHDOG_USER
    id "$SERVICE_USER" >/dev/null 2>&1 || die "BUDGET_WATCHDOG_USER=$SERVICE_USER: no such user"
    [ "$(id -u)" = 0 ] || die "BUDGET_WATCHDOG_USER needs root (the check runs as that user)"
    RUN_AS=$SERVICE_USER
fi

systemd_running() { [ "$LIVE" = yes ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

# A failure anywhere below stops the script (set -e); say where, and what state that leaves.
on_error() { printf 'install.sh: failed (exit %s) at line %s: %s\n' "$1" "$2" "$3" >&2; }
on_exit() {
    local rc=$?
    if [ "$rc" != 0 ]; then
        if [ "$ACTION" = install ] && [ "$INSTALLED" = yes ]; then
            printf '%s\n' "install.sh: budget-watchdog is installed, but the step above failed." >&2
        elif [ "$ACTION" = install ]; then
            printf '%s\n' "install.sh: budget-watchdog is NOT (completely) installed. Fix the cause above" \
                "and run install.sh again: it rebuilds a broken venv and keeps config and keys." >&2
        else
            printf '%s\n' "install.sh: budget-watchdog is NOT completely removed; run it again." >&2
        fi
    fi
}
INSTALLED=no  # yes once the venv, config and unit are all in place
trap 'on_error $? $LINENO "$BASH_COMMAND"' ERR
trap on_exit EXIT

# Delete a directory we are about to replace, but only if it is a venv (or empty).
remove_venv() {
    if [ -e "$1" ] && [ ! -e "$1/pyvenv.cfg" ] && [ -n "$(ls -A "$1" 2>/dev/null)" ]; then
        die "refusing to delete $1: it is not a virtualenv (no pyvenv.cfg); move it away first"
    fi
    rm -rf "$1"
}

if [ "$ACTION" = uninstall ]; then
    if systemd_running; then
        systemctl disable --now budget-watchdog.service 2>/dev/null || true
    fi
    rm -f "$UNIT"
    remove_venv "$VENV"
    if systemd_running; then systemctl daemon-reload; fi
    if [ "$PURGE" = yes ]; then
        rm -rf "$ETC" "$STATE" "$ROOT/var/lib/private/budget-watchdog"
        if [ "$LIVE" = yes ] && id "$SERVICE_USER" >/dev/null 2>&1; then
            userdel "$SERVICE_USER" 2>/dev/null || warn "could not remove the user $SERVICE_USER"
        fi
        say "budget-watchdog removed ($UNIT, $VENV), with its config, keys and state"
        say "($ETC, $STATE)."
    else
        say "budget-watchdog removed ($UNIT, $VENV). Kept: $ETC (config, keys) and"
        say "$STATE (history); run with --uninstall --purge to remove them too."
    fi
    exit 0
fi

# -- the service user -----------------------------------------------------------------------
if [ "$LIVE" = yes ]; then
    say "==> service user $SERVICE_USER"
    if ! id "$SERVICE_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir /var/lib/budget-watchdog \
            --shell /usr/sbin/nologin "$SERVICE_USER"
        say "    created"
    fi
    if command -v runuser >/dev/null; then
        RUN_AS=$SERVICE_USER
    else
        warn "runuser not found: the venv is checked by permission bits only"
    fi
fi
GROUP=  # the config's group: the service user's, when there is one
if [ "$LIVE" = yes ] || [ -n "$RUN_AS" ]; then GROUP=$(id -gn "$SERVICE_USER"); fi

# Run "$@" the way the unit does: as the service user, from /, in a clean environment.
CLEAN_ENV=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8)
as_service() {
    if [ -n "$RUN_AS" ]; then
        (cd / && runuser -u "$RUN_AS" -- "${CLEAN_ENV[@]}" "$@")
    else
        (cd / && "${CLEAN_ENV[@]}" "$@")
    fi
}

# Why the service user cannot run the interpreter at $1, or nothing when it can: under
# ProtectHome=yes /root, /home and /run/user do not exist for the service; elsewhere every
# directory on the way (following each symlink) must be searchable by others (or by the
# user's group or the user when they own it), and the file executable.
unreachable() {
    local given=$1 path=$1 real dir mode uid gid bit target hops=0
    real=$(readlink -f -- "$path") || { say "$path does not resolve"; return 0; }
    case "$real/" in
        /root/*|/home/*|/run/user/*)
            say "$path is $real, under /root, /home or /run/user (hidden by the unit's ProtectHome=yes)"
            return 0 ;;
    esac
    local uid_s='' gid_s=''
    if id "$SERVICE_USER" >/dev/null 2>&1; then uid_s=$(id -u "$SERVICE_USER"); gid_s=$(id -g "$SERVICE_USER"); fi
    # Each symlink on the way and the final file: check the directories leading to it.
    while :; do
        dir=$path
        while dir=$(dirname -- "$dir"); [ "$dir" != / ] && [ "$dir" != . ]; do
            read -r mode uid gid < <(stat -L -c '%a %u %g' -- "$dir")
            bit=$((8#$mode & 1))
            if [ "$uid" = "$uid_s" ]; then bit=$(((8#$mode >> 6) & 1))
            elif [ "$gid" = "$gid_s" ]; then bit=$(((8#$mode >> 3) & 1)); fi
            if [ "$bit" = 0 ]; then
                say "$path: $dir (mode $mode) cannot be entered by ${RUN_AS:-other users}"
                return 0
            fi
        done
        if [ ! -L "$path" ] || [ "$hops" -ge 40 ]; then break; fi
        target=$(readlink -- "$path")
        case "$target" in /*) path=$target ;; *) path=$(dirname -- "$path")/$target ;; esac
        hops=$((hops + 1))
    done
    mode=$(stat -L -c '%a' -- "$real")
    if [ $((8#$mode & 1)) = 0 ]; then say "$real (mode $mode) is not executable by others"; fi
    if [ -n "$RUN_AS" ] && ! as_service "$given" -c '' >/dev/null 2>&1; then
        say "$RUN_AS cannot run $given"
    fi
}

# -- the interpreter --------------------------------------------------------------------------
# Why $1 cannot make the service's venv, or nothing when it can.
unfit() {
    local py=$1 why
    [ -x "$py" ] || { say "$py: not an executable file"; return 0; }
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
        || { say "$py: not Python 3.11 or newer"; return 0; }
    "$py" -c 'import venv, ensurepip' 2>/dev/null \
        || { say "$py: no venv/ensurepip module (Debian/Ubuntu: apt-get install python3-venv)"; return 0; }
    why=$(unreachable "$py")
    if [ -n "$why" ]; then say "$why"; fi
}

say "==> Python for the venv"
if [ -n "$PYTHON" ]; then
    resolved=$(command -v -- "$PYTHON" || true)
    [ -n "$resolved" ] || die "--python/PYTHON $PYTHON: not found"
    case "$resolved" in /*) ;; *) resolved=$(cd "$(dirname -- "$resolved")" && pwd)/${resolved##*/} ;; esac
    why=$(unfit "$resolved")
    [ -z "$why" ] || die "--python/PYTHON cannot make the service's venv: $why"
    PY=$resolved
else
    PY=
    reasons=()
    for candidate in /usr/bin/python3 /usr/local/bin/python3 "$(command -v python3 || true)"; do
        if [ -z "$candidate" ] || [ ! -e "$candidate" ]; then continue; fi
        why=$(unfit "$candidate")
        if [ -z "$why" ]; then PY=$candidate; break; fi
        reasons+=("$why")
    done
    if [ -z "$PY" ]; then
        printf 'install.sh: no usable Python 3.11+ for the service:\n' >&2
        if [ "${#reasons[@]}" -gt 0 ]; then printf '    %s\n' "${reasons[@]}" >&2; fi
        die "install a system Python with venv (Debian/Ubuntu: apt-get install python3 python3-venv), or pass --python PATH"
    fi
fi
say "    using $PY ($(readlink -f -- "$PY"), Python $("$PY" -c 'import platform; print(platform.python_version())'))"

# -- the venv -------------------------------------------------------------------------------
# The installed code's identity: version, and a hash over every installed distribution and
# the files of ours (RECORD lists each with its hash). Empty when nothing runs.
fingerprint() {
    [ -x "$VENV/bin/python" ] || return 0
    # -I and /: only the venv's own packages (not a checkout's *.egg-info in the cwd).
    (cd / && "$VENV/bin/python" -I - 2>/dev/null) <<'PY' || true
import hashlib
import importlib.metadata as md

ours = md.distribution("budget-watchdog")
digest = hashlib.sha256()
for dist in sorted(md.distributions(), key=lambda d: str(d.metadata["Name"]).lower()):
    digest.update(f"{dist.metadata['Name']}=={dist.version}\n".encode())
record = ours.read_text("RECORD")
if record is None:
    raise SystemExit(1)
digest.update(record.encode())
print(ours.version, digest.hexdigest()[:12])
PY
}

# Why the venv at $VENV must be rebuilt, or nothing when it is healthy: its python and pip
# run, it was made from exactly $PY (which the service user can run: see unfit), and the
# service user can run its python (checked as that user when there is one).
venv_problem() {
    local base target hops=0
    [ -e "$VENV" ] || { say "there is none"; return 0; }
    [ -e "$VENV/pyvenv.cfg" ] || { say "$VENV has no pyvenv.cfg"; return 0; }
    "$VENV/bin/python" -c '' 2>/dev/null || { say "its python does not run"; return 0; }
    # bin/python -> python3 -> /usr/bin/python3: the first link leading out of the venv.
    base=$VENV/bin/python
    while [ -L "$base" ] && [ "$(dirname -- "$base")" = "$VENV/bin" ] && [ "$hops" -lt 10 ]; do
        hops=$((hops + 1))
        target=$(readlink -- "$base")
        case "$target" in /*) base=$target ;; *) base=$VENV/bin/$target ;; esac
    done
    if [ "$(dirname -- "$base")" = "$VENV/bin" ]; then  # --copies: no link, ask it
        base=$("$VENV/bin/python" -c 'import sys; print(sys._base_executable)')
    fi
    [ "$base" = "$PY" ] || { say "it was made from $base, not $PY"; return 0; }
    if [ -n "$RUN_AS" ] && ! as_service "$VENV/bin/python" -c '' >/dev/null 2>&1; then
        say "$RUN_AS cannot run $VENV/bin/python"
        return 0
    fi
    "$VENV/bin/python" -m pip --version >/dev/null 2>&1 || say "it has no working pip"
}

say "==> virtualenv and package in $VENV"
BEFORE=$(fingerprint)
REBUILT=no
problem=$(venv_problem)
if [ -n "$problem" ]; then
    if [ -e "$VENV" ]; then say "    rebuilding it: $problem"; REBUILT=yes; fi
    remove_venv "$VENV"
    if ! "$PY" -m venv "$VENV"; then
        rm -rf "$VENV"
        die "$PY -m venv $VENV failed (Debian/Ubuntu: apt-get install python3-venv); nothing was left behind"
    fi
    say "    made from $PY"
else
    say "    reusing it (made from $PY, healthy)"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$SOURCE"
install -d -m 0755 "$VENV/share/doc/budget-watchdog"
install -m 0644 "$SOURCE/README.md" "$SOURCE/watchdog.example.toml" "$VENV/share/doc/budget-watchdog/"
if ! version=$(as_service "$VENV/bin/budget-watchdog" --version 2>&1); then
    printf '%s\n' "$version" >&2
    die "$VENV/bin/budget-watchdog --version fails${RUN_AS:+ when run as $RUN_AS} (output above): the service could not start"
fi
say "    ${version} runs${RUN_AS:+ as $RUN_AS}"
if [ -n "$ROOT" ]; then say "    (under --destdir the venv runs only from $VENV; it cannot be moved)"; fi
AFTER=$(fingerprint)
if [ -z "$AFTER" ]; then AFTER="${version#budget-watchdog } (no fingerprint)"; fi

# -- config ---------------------------------------------------------------------------------
# The state in PostgreSQL: the URL file becomes keys/state_url, which the unit hands to the
# service as the credential state_url (LoadCredential=; the keys/ directory is root's 0700,
# so only root and the service see it). The config then must not name a SQLite path: a
# `path` in [state] is commented out; a url or url_file there would win over the credential.
STATE_URL_CHANGED=no
use_state_url() {
    local dest=$ETC/keys/state_url config=$ETC/watchdog.toml edited
    if [ -f "$dest" ] && cmp -s -- "$STATE_URL_FILE" "$dest"; then
        say "    kept $dest: it holds the same URL"
    else
        install -m 0600 -- "$STATE_URL_FILE" "$dest.tmp"
        mv -f -- "$dest.tmp" "$dest"
        STATE_URL_CHANGED=yes
        say "    installed the state's URL as $dest ($(stat -c '%a %U' -- "$dest"); the credential state_url)"
    fi
    edited=$(awk '
        /^[[:space:]]*\[/ { in_state = ($0 ~ /^[[:space:]]*\[state\][[:space:]]*(#.*)?$/) }
        in_state && /^[[:space:]]*path[[:space:]]*=/ {
            print "# " $0 "  # commented out by install.sh --state-url-file: the state is in PostgreSQL"
            next
        }
        { print }
    ' "$config")
    if [ "$edited" != "$(cat "$config")" ]; then
        printf '%s\n' "$edited" > "$config.tmp"
        chmod --reference="$config" "$config.tmp"
        chown --reference="$config" "$config.tmp" 2>/dev/null || true
        mv -f -- "$config.tmp" "$config"
        STATE_URL_CHANGED=yes
        say "    commented out [state] path in $config: the state is in PostgreSQL now"
    fi
    if awk '
        /^[[:space:]]*\[/ { in_state = ($0 ~ /^[[:space:]]*\[state\][[:space:]]*(#.*)?$/) }
        in_state && /^[[:space:]]*url(_file)?[[:space:]]*=/ { found = 1 }
        END { exit !found }
    ' "$config"; then
        warn "$config sets [state] url or url_file, which wins over the credential: remove it to use $dest"
    fi
}
say "==> config in $ETC"
install -d -m 0755 "$ETC"
install -d -m 0700 "$ETC/keys"
if [ ! -e "$ETC/watchdog.toml" ]; then
    install -m 0640 "$SOURCE/watchdog.example.toml" "$ETC/watchdog.toml"
    if [ -n "$GROUP" ]; then chgrp "$GROUP" "$ETC/watchdog.toml"; fi
    say "    wrote $ETC/watchdog.toml from the example (0640${GROUP:+ root:$GROUP})"
else
    say "    kept the existing $ETC/watchdog.toml"
fi
if [ -n "$STATE_URL_FILE" ]; then use_state_url; fi
if [ -n "$RUN_AS" ] && ! as_service test -r "$ETC/watchdog.toml"; then
    warn "$RUN_AS cannot read $ETC/watchdog.toml ($(stat -c '%a %U:%G' "$ETC/watchdog.toml")): the service will fail; chgrp $GROUP it and chmod 0640"
fi

# -- unit -----------------------------------------------------------------------------------
say "==> systemd unit $UNIT"
install -d -m 0755 "$(dirname "$UNIT")"
OLD_UNIT=$(cat "$UNIT" 2>/dev/null || true)
sed "s#/opt/budget-watchdog#$PREFIX#g" "$SOURCE/systemd/budget-watchdog.service" > "$UNIT.tmp"
chmod 0644 "$UNIT.tmp"
mv "$UNIT.tmp" "$UNIT"
UNIT_CHANGED=no
if [ "$OLD_UNIT" != "$(cat "$UNIT")" ]; then UNIT_CHANGED=yes; fi
if systemd_running; then systemctl daemon-reload; fi
INSTALLED=yes

# -- restart --------------------------------------------------------------------------------
# Restart when it runs, or tries to (a crash loop), or failed while enabled (a crash loop
# that hit the start limit: what a venv the service user cannot run used to cause).
STATE_WAS=
wants_restart() {
    STATE_WAS=$(systemctl is-active budget-watchdog.service 2>/dev/null || true)
    case "$STATE_WAS" in
        active|activating|reloading|deactivating) return 0 ;;
        failed)
            systemctl is-enabled --quiet budget-watchdog.service 2>/dev/null || return 1
            systemctl reset-failed budget-watchdog.service
            return 0 ;;
    esac
    return 1
}
say "==> running service"
if [ -z "$BEFORE" ] && [ -z "$OLD_UNIT" ]; then
    what=first
elif [ -z "$BEFORE" ]; then
    what="installed $AFTER (nothing that ran was installed before)"
elif [ "$BEFORE" != "$AFTER" ]; then
    what="the installed code changed: $BEFORE -> $AFTER"
elif [ "$REBUILT" = yes ]; then
    what="the venv was rebuilt (code unchanged: $AFTER)"
elif [ "$UNIT_CHANGED" = yes ]; then
    what="the unit changed (code unchanged: $AFTER)"
elif [ "$STATE_URL_CHANGED" = yes ]; then
    what="the state's URL or [state] changed (code unchanged: $AFTER)"
else
    what=
fi
if [ "$what" = first ]; then
    say "    first install ($AFTER): nothing to restart"
elif [ -z "$what" ]; then
    say "    code ($AFTER) and unit unchanged: no restart needed"
elif systemd_running && wants_restart; then
    say "    $what: restarting the service ($STATE_WAS)"
    if ! systemctl restart budget-watchdog.service; then
        die "the restart failed; see: systemctl status budget-watchdog; journalctl -u budget-watchdog"
    fi
    say "    restarted; check it with: systemctl status budget-watchdog"
elif systemd_running; then
    say "    $what; the service is not running (start it as below)"
else
    say "    $what; if budget-watchdog is running, restart it with: systemctl restart budget-watchdog"
fi

cat <<NEXT

budget-watchdog ${AFTER%% *} is installed. Next:
  1. Put the key whose spend is watched in $ETC/keys/api_key
     (and, optionally, a management key in $ETC/keys/management_key); chmod 600 both.
     The unit hands them to the service as the credentials openrouter_api_key and
     openrouter_management_key.
  2. Set your limits in $ETC/watchdog.toml, then check it (as root, so that it reads
     keys/ as the service gets them; passwords and keys are shown masked):
       $VENV/bin/budget-watchdog check-config --config $ETC/watchdog.toml
  3. Start it and follow it:
       systemctl enable --now budget-watchdog
       systemctl status budget-watchdog; journalctl -u budget-watchdog -f
  4. Let batch jobs check the permit before they launch:
       $VENV/bin/budget-watchdog gate --cost 3 && python batch.py
NEXT
if [ -n "$STATE_URL_FILE" ]; then
    cat <<SHARED
The state is in PostgreSQL: the URL is $ETC/keys/state_url (the credential state_url),
shared by every host that runs this unit with the same URL. check-config shows it with the
password masked; see README.md, "Running several".
SHARED
fi
