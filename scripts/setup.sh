#!/usr/bin/env bash
# Idempotent bootstrap for a fresh Debian machine (run as root or as a user with sudo):
# redis-server from apt when missing, a .venv in the repo root, and the project
# installed in it in editable mode with its dev extras. Safe to run again: each step is
# skipped when already done. PYTHON overrides the interpreter used to create .venv.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.installed-stamp"

say() { printf '[setup] %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        say "need root (or sudo) to run: $*" >&2
        exit 1
    fi
}

APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        say "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
        APT_UPDATED=1
    fi
    say "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

# 1. redis-server (tests and the demo start their own on a free port).
if command -v redis-server >/dev/null 2>&1; then
    say "redis-server present: $(command -v redis-server)"
else
    apt_install redis-server
    command -v redis-server >/dev/null 2>&1 || { say "redis-server still not on PATH" >&2; exit 1; }
    say "installed $(redis-server --version | cut -d' ' -f1-3)"
fi

# 1b. Headless Chromium and its driver, for the Flower browser test (Selenium).
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    say "chromium present: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
else
    apt_install chromium chromium-driver
fi

# 2. The virtualenv.
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    say "$PYTHON not found; install python3 (>= 3.11)" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    say "$("$PYTHON" --version 2>&1) is too old: the project needs Python >= 3.11" >&2
    exit 1
fi
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    say "virtualenv present: $VENV"
else
    if [ -e "$VENV" ]; then
        say "removing broken $VENV"
        rm -rf "$VENV"
    fi
    if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        apt_install python3-venv  # Debian splits venv/ensurepip out of python3
    fi
    say "creating $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
    rm -f "$STAMP"
fi

# 3. The project, editable, with dev extras; again only when pyproject.toml changed.
if [ -f "$STAMP" ] && [ ! pyproject.toml -nt "$STAMP" ]; then
    say "dependencies up to date (pyproject.toml older than $STAMP)"
else
    say "pip install -e '.[dev]' (log: $VENV/pip-install.log)"
    if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]' \
        >"$VENV/pip-install.log" 2>&1; then
        grep -v '^WARNING: Location' "$VENV/pip-install.log" | tail -n 40 >&2
        say "pip install failed; full log in $VENV/pip-install.log" >&2
        exit 1
    fi
    touch "$STAMP"
fi
say "done"
