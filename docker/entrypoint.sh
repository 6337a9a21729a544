#!/bin/sh
# Entry point of every Python service of the image (docker-compose.yml).
#
# Compose passes every model setting through, empty when the operator set none; the
# official client takes an empty OPENAI_BASE_URL (or OPENAI_ORG_ID, ...) literally, so
# empty ones are unset. With no OPENAI_API_KEY a placeholder key is used, and the model
# is OPENAI_BASE_URL when set (a self-hosted server that needs no key), else the
# OpenAI-compatible simulator ($SIMULATOR_URL). Then run the command.
set -eu
for name in OPENAI_BASE_URL OPENAI_ORG_ID OPENAI_PROJECT_ID; do
    eval "value=\${$name:-}"
    if [ -z "$value" ]; then
        unset "$name"
    fi
done
if [ -z "${OPENAI_API_KEY:-}" ]; then
    OPENAI_API_KEY=sk-simulator-placeholder
    OPENAI_BASE_URL="${OPENAI_BASE_URL:-${SIMULATOR_URL:-http://simulator:8000/v1}}"
    export OPENAI_API_KEY OPENAI_BASE_URL
fi
exec "$@"
