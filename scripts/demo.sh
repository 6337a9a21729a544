#!/usr/bin/env bash
# Bootstrap if needed, then run the demo (Redis, simulator and workers on free ports).
# Arguments go to `celery-agents demo`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/celery-agents demo "$@"
