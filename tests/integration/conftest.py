"""A real system for integration tests: redis-server, the simulator and Celery workers.

Started once per test session on free ports; every test isolates itself with its own
session ids and its own scripted model name, so no test sees another's data.
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from producer.client import AgentClient
from producer.devstack import DevStack

API_KEY = "sk-test-integration-" + uuid.uuid4().hex  # must never show up in Redis or logs
WEBHOOK_SECRET = "whsec-test-" + uuid.uuid4().hex  # signs webhooks; the same rule holds
# Webhook receivers of the tests listen on 127.0.0.2; "localhost" is listed but resolves to
# an unlisted internal address, so the workers refuse it (tests/integration/test_webhooks.py).
WEBHOOK_HOSTS = "127.0.0.2,localhost"
OUTPUT_DIR = Path(__file__).resolve().parents[2] / "test-output"


class Simulator:
    """The simulator's control endpoints: script replies, read recorded requests."""

    def __init__(self, base_url: str) -> None:
        self.root = base_url.removesuffix("/v1")

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.root + path, data=data, method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def script(self, model: str, *replies: dict[str, Any]) -> None:
        self._call("POST", "/_sim/script", {"model": model, "replies": list(replies)})

    def requests(self, model: str, kind: str | None = None) -> list[dict[str, Any]]:
        query = f"model={model}" + (f"&kind={kind}" if kind else "")
        return list(self._call("GET", f"/_sim/requests?{query}")["requests"])

    def faults(self, **config: Any) -> None:
        """Replace the fault configuration (simulator/faults.py); no arguments: none."""
        self._call("POST", "/_sim/faults", config)

    def stats(self) -> dict[str, int]:
        """The simulator's operation counters (runs created, retrieves, ...)."""
        return dict(self._call("GET", "/_sim/stats")["stats"])

    def peek(self, kind: str, object_id: str) -> dict[str, Any]:
        """A run (``kind="runs"``) or response (``"responses"``) now, without counting a
        retrieve."""
        return dict(self._call("GET", f"/_sim/{kind}/{object_id}"))

    def openai(self) -> Any:
        """An ``openai`` client for the simulator (to prepare server-side objects)."""
        import openai

        return openai.OpenAI(base_url=self.root + "/v1", api_key=API_KEY, max_retries=0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The secret scan reads what every other test left behind, so it runs last."""
    items.sort(key=lambda item: item.path.name == "test_secrets.py")  # stable: order kept


@pytest.fixture(scope="session")
def stack() -> Iterator[DevStack]:
    OUTPUT_DIR.mkdir(exist_ok=True)
    run_dir = OUTPUT_DIR / f"stack-{os.getpid()}"
    with DevStack(run_dir, keep_run_dir=True) as dev:
        dev.extra_env.update({
            "OPENAI_API_KEY": API_KEY,
            "AGENT_TOOL_MODULES": "tests.tool_fixtures",
            "AGENT_MODEL": "gpt-4o-mini",
            "AGENT_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "AGENT_WEBHOOK_ALLOWED_HOSTS": WEBHOOK_HOSTS,
            "AGENT_WEBHOOK_MAX_ATTEMPTS": "3",
            "AGENT_WEBHOOK_BACKOFF": "0.5",
        })
        dev.start_redis()
        dev.start_simulator(latency_ms=0)
        # The deployment's own pools and concurrency (producer/deployment.py).
        dev.start_worker(["agents"], concurrency=None, name="agents")
        dev.start_worker(["tools"], concurrency=None, name="tools")
        yield dev


@pytest.fixture(scope="session")
def sim(stack: DevStack) -> Simulator:
    assert stack.simulator_url
    return Simulator(stack.simulator_url)


@pytest.fixture
def client(stack: DevStack) -> Iterator[AgentClient]:
    with AgentClient(stack.redis_url) as agent_client:
        yield agent_client


@pytest.fixture
def model() -> str:
    """A model name of this test's own: its scripted replies go to this test only."""
    return f"script-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def session() -> str:
    return f"it-{uuid.uuid4().hex[:12]}"


def tool_call(name: str, arguments: Any, call_id: str | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {"name": name, "arguments": arguments}
    if call_id:
        call["id"] = call_id
    return call
