#!/usr/bin/env bash
# Lint, type-check and test. Arguments go to pytest (e.g. -k devstack, -m "not integration").
# Runs every check even after one fails, then exits non-zero if any failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh

failed=()
step() {
    local name=$1
    shift
    printf '[test] %s\n' "$name"
    if ! "$@"; then
        failed+=("$name")
    fi
}

step "ruff check" .venv/bin/ruff check .
step "mypy" .venv/bin/mypy
step "pytest" .venv/bin/python -m pytest -q -p no:cacheprovider "$@"

if [ "${#failed[@]}" -gt 0 ]; then
    printf '[test] FAILED: %s\n' "${failed[*]}" >&2
    exit 1
fi
printf '[test] all checks passed\n'
