#!/bin/sh
# Entry point of every Python service of the image (docker-compose.yml).
# With no OPENAI_API_KEY the OpenAI-compatible simulator is the model: point the
# official client at it ($SIMULATOR_URL) with a placeholder key. Then run the command.
set -eu
if [ -z "${OPENAI_API_KEY:-}" ]; then
    OPENAI_API_KEY=sk-simulator-placeholder
    OPENAI_BASE_URL="${SIMULATOR_URL:-http://simulator:8000/v1}"
    export OPENAI_API_KEY OPENAI_BASE_URL
fi
exec "$@"
