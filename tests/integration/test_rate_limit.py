"""The model rate limit holds across worker processes: two workers, one shared budget."""

from __future__ import annotations

import itertools
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from producer.client import AgentClient
from producer.contracts import JobStatus
from producer.devstack import DevStack
from tests.integration.conftest import Simulator
from tests.integration.stacks import new_stack, wait_job

pytestmark = pytest.mark.integration

RPM = 60  # one request a second per model
JOBS = 8
MAX_RETRIES = 4  # more than Celery's default max_retries (3) of a task
OVERLOADED = {"error": {"status": 503, "message": "overloaded", "type": "server_error"}}


@pytest.fixture(scope="module")
def rl_stack() -> Iterator[DevStack]:
    env = {"AGENT_MODEL_RPM": str(RPM), "AGENT_MODEL_RPM_OVERRIDES": "rl-unlimited=0",
           "AGENT_MODEL_MAX_RETRIES": str(MAX_RETRIES)}
    with new_stack("stack-ratelimit", env) as stack:
        stack.start_redis()
        stack.start_simulator()
        stack.start_worker(["agents"], 2, "agents-a")
        stack.start_worker(["agents"], 2, "agents-b")
        stack.start_worker(["tools"], 1, "tools")
        yield stack


def arrivals(stack: DevStack) -> list[float]:
    root = (stack.simulator_url or "").removesuffix("/v1")
    with urllib.request.urlopen(root + "/_sim/faults", timeout=5) as response:
        stats: dict[str, Any] = json.loads(response.read())["stats"]
    return sorted(stats["arrivals"])


def test_two_workers_together_stay_under_the_limit(rl_stack: DevStack) -> None:
    sim = Simulator(rl_stack.simulator_url or "")
    sim.script("rl-model", *[{"content": f"answer {i}"} for i in range(JOBS)])
    before = len(arrivals(rl_stack))
    with AgentClient(rl_stack.redis_url) as client:
        jobs = [client.submit({"session_id": f"rl-{i}", "message": "hi", "model": "rl-model",
                               "tools": []}) for i in range(JOBS)]
        results = [wait_job(client, job_id, 60) for job_id in jobs]
    assert all(r.status == JobStatus.SUCCEEDED for r in results), [r.error for r in results]
    times = arrivals(rl_stack)[before:]
    assert len(times) == JOBS
    # Submitted at once, but spread one per second. Arrivals are timed at the simulator,
    # a thread's HTTP send after its grant (GIL and scheduling jitter of a busy threads
    # worker: a few hundred ms), so one gap may look shorter; any 4 intervals in a row
    # still span nearly 4 s, and all of them (JOBS - 1) s.
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) > 0.5, gaps
    assert min(times[i + 4] - times[i] for i in range(len(times) - 4)) >= 3.6, gaps
    assert times[-1] - times[0] >= (JOBS - 1) * 0.95
    # Both worker processes took part in the one schedule: each made model calls or was
    # told to wait for a slot. Which process runs a rescheduled step is up to whichever
    # takes its message first (CI saw one process make every call); a process told to
    # wait with no call of its own shows the budget is shared, and if both made calls,
    # the gaps above show it (per-process budgets would each call at once).
    for name in ("agents-a", "agents-b"):
        log = next(w for w in rl_stack.workers if w.name == name).log_text()
        assert "step=model:0" in log or "rate limit; waiting" in log, (
            f"{name} neither made a model call nor waited for a slot"
        )


def test_rate_limit_waits_do_not_use_up_error_retries(rl_stack: DevStack) -> None:
    """Four 503s then an answer: each retry also waits for its rate-limit slot. Counted
    as attempts, those waits would exhaust AGENT_MODEL_MAX_RETRIES (4) and fail the job."""
    sim = Simulator(rl_stack.simulator_url or "")
    sim.script("rl-retry", *[OVERLOADED] * MAX_RETRIES, {"content": "recovered"})
    with AgentClient(rl_stack.redis_url) as client:
        job_id = client.submit({"session_id": "rl-retry", "message": "hi", "model": "rl-retry",
                                "tools": []})
        result = wait_job(client, job_id, 60)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert result.response == "recovered"
    assert len(sim.requests("rl-retry")) == MAX_RETRIES + 1
    log = "".join(w.log_text() for w in rl_stack.workers)
    assert f"job {job_id} step 0: model rl-retry rate limit; waiting" in log


def test_an_override_of_zero_lifts_the_limit_and_retries_go_past_three(
    rl_stack: DevStack,
) -> None:
    """AGENT_MODEL_MAX_RETRIES above Celery's default of 3 is honoured (a retry with
    max_retries=None would stop at 3 with MaxRetriesExceededError)."""
    sim = Simulator(rl_stack.simulator_url or "")
    sim.script("rl-unlimited", *[OVERLOADED] * MAX_RETRIES, {"content": "recovered"})
    with AgentClient(rl_stack.redis_url) as client:
        job_id = client.submit({"session_id": "rl-unl", "message": "hi",
                                "model": "rl-unlimited", "tools": []})
        result = wait_job(client, job_id, 60)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert len(sim.requests("rl-unlimited")) == MAX_RETRIES + 1
    log = "".join(w.log_text() for w in rl_stack.workers)
    assert f"job {job_id} step 0: model rl-unlimited rate limit" not in log
