#!/usr/bin/env bash
# Prepare this machine for convoy; installs or starts only what is missing, so a second run
# takes well under a second:
#   - apt packages: docker.io (when there is no dockerd), debootstrap, busybox-static,
#     parallel (GNU parallel, for bench/), openssh-server, openssh-client and rsync (the SSH test
#     hosts and the sync baselines), and python3-venv / debian-archive-keyring if needed
#   - the Docker engine: started when 'docker info' fails (systemd, else dockerd in the background)
#   - .venv in the repository root with convoy installed editable, with its dev tools, at the
#     versions of lock/dev.txt (reinstalled when it or pyproject.toml is newer than the last
#     install; scripts/lock.sh refreshes the lock)
#   - the images convoy/busybox:1 and convoy/python:3.11 (images/build.sh)
#
# usage: bash scripts/setup.sh       or   source scripts/setup.sh   (also activates .venv)
# env:   CONVOY_SKIP_SETUP=1   skip everything
#        CONVOY_PYTHON         python used to create .venv (default python3, 3.11 or newer)
#        CONVOY_SETUP_LOG      where apt, pip and build output goes (default /tmp/convoy-setup.UID.log)
# Runs as root, or as a user with sudo (for apt and dockerd) and access to the Docker engine.

# Sourced: do the work in a child bash, so that 'set -e' and 'exit' cannot reach the caller's
# shell, then activate the virtualenv in the caller's shell.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    if bash "${BASH_SOURCE[0]}" "$@"; then
        _convoy_venv="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/activate"
        # shellcheck disable=SC1090
        if [[ -f "$_convoy_venv" ]]; then source "$_convoy_venv"; fi
        unset _convoy_venv
        return 0
    else
        return $?
    fi
fi

set -euo pipefail

if [[ "${CONVOY_SKIP_SETUP:-}" == 1 ]]; then
    exit 0
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
UID_=$(id -u)

# One setup at a time per user (two terminals running scripts/test.sh at once).
if command -v flock >/dev/null 2>&1; then
    exec 9>"${TMPDIR:-/tmp}/convoy-setup.$UID_.lock"
    flock 9
fi

LOG=${CONVOY_SETUP_LOG:-${TMPDIR:-/tmp}/convoy-setup.$UID_.log}
: >"$LOG"

say() { echo "==> $*"; }
die() {
    echo "scripts/setup.sh: $*" >&2
    exit 1
}
fail() {  # like die, and show the end of the log
    echo "scripts/setup.sh: $*" >&2
    if [[ -s "$LOG" ]]; then
        echo "--- last lines of $LOG:" >&2
        tail -n 30 "$LOG" >&2
    fi
    exit 1
}
quietly() {  # run a noisy command, its output to the log; on failure show the log's tail
    echo "+ $*" >>"$LOG"
    "$@" >>"$LOG" 2>&1 || fail "failed: $*"
}
as_root() {
    if [[ $UID_ -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "needs root (or sudo) for: $*"
    fi
}

# --- apt packages ------------------------------------------------------------------------------
have_pkg() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == *"ok installed" ]]; }
have_cmd() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" || -x "/sbin/$1" ]]; }

PYTHON=${CONVOY_PYTHON:-python3}
pkgs=()
have_cmd dockerd || pkgs+=(docker.io)
if command -v dpkg-query >/dev/null 2>&1; then
    have_pkg debootstrap || pkgs+=(debootstrap)
    have_pkg busybox-static || pkgs+=(busybox-static)
    have_pkg parallel || pkgs+=(parallel)
    have_pkg openssh-server || pkgs+=(openssh-server)
    have_pkg openssh-client || pkgs+=(openssh-client)
    have_pkg rsync || pkgs+=(rsync)
else
    have_cmd debootstrap || pkgs+=(debootstrap)
    have_cmd busybox || pkgs+=(busybox-static)
    have_cmd parallel || pkgs+=(parallel)
    [[ -x /usr/sbin/sshd ]] || pkgs+=(openssh-server)  # tests run /usr/sbin/sshd by that path
    have_cmd ssh || pkgs+=(openssh-client)
    have_cmd rsync || pkgs+=(rsync)
fi
# debootstrap of Debian bookworm checks signatures with Debian's keyring (missing on Ubuntu)
[[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || pkgs+=(debian-archive-keyring)
# Debian's own python3 needs python3-venv for 'python3 -m venv' (pyenv's and others have it)
if [[ ! -x .venv/bin/python ]] && [[ "$(command -v "$PYTHON" || true)" == /usr/bin/* ]] \
    && ! "$PYTHON" -c 'import ensurepip' >/dev/null 2>&1; then
    pkgs+=(python3-venv)
fi

if [[ ${#pkgs[@]} -gt 0 ]]; then
    command -v apt-get >/dev/null 2>&1 \
        || die "missing: ${pkgs[*]}; this is not a Debian/Ubuntu machine (no apt-get): install them by hand"
    say "installing ${pkgs[*]} (apt)"
    quietly as_root apt-get update -q
    quietly as_root env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l \
        apt-get install -y -q "${pkgs[@]}"
fi

# --- Docker engine -----------------------------------------------------------------------------
docker_ok() { docker info >/dev/null 2>&1; }
if ! docker_ok; then
    command -v docker >/dev/null 2>&1 || die "no docker client on PATH"
    why=$(docker info 2>&1 >/dev/null || true)
    if [[ "$why" == *"ermission denied"* ]]; then
        die "the Docker engine runs but $(id -un) may not use it; add the user to the docker group:
    sudo usermod -aG docker $(id -un)   (then log in again)"
    fi
    say "starting the Docker engine"
    if [[ -d /run/systemd/system && "$(cat /proc/1/comm 2>/dev/null)" == systemd ]]; then
        as_root systemctl start docker >>"$LOG" 2>&1 || true
    fi
    pidfile=/var/run/docker.pid
    if ! docker_ok && ! { [[ -f $pidfile ]] && [[ -d /proc/$(cat "$pidfile" 2>/dev/null) ]]; }; then
        # No systemd (containers, CI machines): run dockerd in the background, in its own
        # session, with no inherited descriptors: neither the lock above nor a pipe of whoever
        # runs this script (a CI runner waits for its pipes to close) may outlive this script.
        starter=()
        command -v setsid >/dev/null 2>&1 && starter=(setsid)
        # shellcheck disable=SC2016  # expanded by the inner bash
        as_root "${starter[@]}" bash -c '
            for fd in /proc/$$/fd/*; do
                fd=${fd##*/}
                if [[ $fd -gt 2 ]]; then eval "exec $fd>&-" 2>/dev/null || true; fi
            done
            nohup dockerd >/var/log/convoy-dockerd.log 2>&1 </dev/null &'
    fi
    dockerd_running() { grep -qsx dockerd /proc/[0-9]*/comm; }
    for i in $(seq 120); do
        docker_ok && break
        if [[ $i -ge 6 ]] && ! dockerd_running; then break; fi  # it exited: no point waiting
        sleep 0.5
    done
    if ! docker_ok; then
        echo "--- last lines of /var/log/convoy-dockerd.log:" >&2
        tail -n 15 /var/log/convoy-dockerd.log >&2 2>/dev/null || true
        if dockerd_running; then
            die "the Docker engine did not answer within 60 s"
        fi
        die "the Docker engine (dockerd) did not start"
    fi
fi

# --- virtualenv with convoy ----------------------------------------------------------------------
STAMP=.venv/.convoy-installed
if [[ ! -x .venv/bin/python ]] || ! .venv/bin/python -c '' >/dev/null 2>&1; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (set CONVOY_PYTHON)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "convoy needs python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)"
    say "creating .venv ($("$PYTHON" --version 2>&1))"
    quietly "$PYTHON" -m venv .venv
    rm -f "$STAMP"
fi
if [[ ! -f "$STAMP" || pyproject.toml -nt "$STAMP" || lock/dev.txt -nt "$STAMP" ]]; then
    # The exact versions CI tested, each file checked against the lock's sha256; then convoy
    # itself, editable, built with the locked setuptools (no other download).
    say "installing convoy and its dev tools into .venv (pip, versions from lock/dev.txt)"
    quietly .venv/bin/python -m pip install --disable-pip-version-check -q \
        --require-hashes --no-deps -r lock/dev.txt
    quietly .venv/bin/python -m pip install --disable-pip-version-check -q \
        --no-deps --no-build-isolation -e .
    touch "$STAMP"
fi

# --- images --------------------------------------------------------------------------------------
bash images/build.sh --quiet all 2>>"$LOG" || fail "images/build.sh failed"
