# One image for every Python service of docker-compose.yml: workers, Flower, the HTTP
# gateway and the simulator. Build: docker build -t celery-agents .
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first (cached while only the code changes).
COPY pyproject.toml README.md celeryconfig.py ./
COPY producer ./producer
COPY worker ./worker
COPY simulator ./simulator
RUN pip install ".[worker,gateway]" "flower>=2.2,<3"

COPY docker ./docker
# /opt/agent-tools is on the workers' PYTHONPATH (docker-compose.yml): compose mounts
# AGENT_TOOLS_DIR there; to bake tool modules into an image instead, COPY them there.
RUN useradd --create-home --uid 10001 agents \
    && mkdir -p /data /opt/agent-tools \
    && chown agents /data
USER agents

ENTRYPOINT ["sh", "docker/entrypoint.sh"]
CMD ["celery-agents", "--help"]
