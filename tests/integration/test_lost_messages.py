"""A job whose next task was lost (say, in a Redis restart) is resumed by the sweep."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from producer.client import AgentClient
from producer.contracts import JobStatus
from producer.devstack import DevStack
from tests.integration.conftest import OUTPUT_DIR, Simulator

STALL_SECONDS = "2"


@pytest.fixture(scope="module")
def stall_stack() -> Iterator[DevStack]:
    with DevStack(OUTPUT_DIR / "stack-lost-messages", keep_run_dir=True) as dev:
        dev.extra_env.update({"AGENT_STALL_SECONDS": STALL_SECONDS})
        dev.start_redis()
        dev.start_simulator(latency_ms=0)
        dev.start_worker(["agents", "tools"], concurrency=2, name="both")
        yield dev


class LosingStarts:
    """Wraps the producer's Celery app: start tasks vanish, everything else is sent."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lost: list[str] = []

    def send_task(self, name: str, **options: Any) -> Any:
        if name == "agents.turn.start":
            self.lost.append(options["task_id"])
            return None
        return self.app.send_task(name, **options)


def test_a_lost_start_is_sent_again_and_the_job_completes(
    stall_stack: DevStack, model: str, session: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_STALL_SECONDS", STALL_SECONDS)  # the producer plans sweeps by it
    assert stall_stack.simulator_url
    Simulator(stall_stack.simulator_url).script(model, {"content": "made it"})
    with AgentClient(stall_stack.redis_url) as client:
        losing = LosingStarts(client.celery)
        client.order.celery = losing  # type: ignore[assignment]
        started = time.monotonic()
        job_id = client.submit({"session_id": session, "message": "hi", "model": model})
        assert losing.lost == [f"{job_id}-start"]
        assert client.status(job_id).status == JobStatus.QUEUED  # type: ignore[union-attr]
        result = client.wait(job_id, timeout=30)
    assert result.status == JobStatus.SUCCEEDED and result.response == "made it"
    assert time.monotonic() - started >= 2.0  # resumed by the stall check, not at once
    log = next(p for p in stall_stack.processes if p.name == "both").log_text()
    assert f"job {job_id}: no progress for 2 s; sending its next step again" in log
