"""The pools at their limits: more turns than slots, a model call that hangs, and I/O-bound
tools moved to an I/O pool (the setup the README recommends for tools that mostly wait).

One stack: an agents worker on the deployment's threads pool but only 4 threads and a
1.5 s model timeout, and a tools worker on ``-P threads -c 32``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from producer.client import AgentClient
from producer.contracts import JobStatus
from producer.devstack import DevStack
from tests.integration.conftest import Simulator, tool_call
from tests.integration.stacks import new_stack, wait_job

pytestmark = pytest.mark.integration

SLOTS = 4
MODEL_TIMEOUT = 1.5


@pytest.fixture(scope="module")
def pstack() -> Iterator[DevStack]:
    with new_stack("stack-pool-limits", {"AGENT_MODEL_TIMEOUT": str(MODEL_TIMEOUT),
                                         "AGENT_MODEL_MAX_RETRIES": "2"}) as stack:
        stack.start_redis()
        stack.start_simulator()
        stack.start_worker(["agents"], SLOTS, "agents")
        stack.start_worker(["tools"], 32, "io-tools", pool="threads")
        yield stack


@pytest.fixture
def pclient(pstack: DevStack) -> Iterator[AgentClient]:
    with AgentClient(pstack.redis_url) as agent_client:
        yield agent_client


@pytest.fixture
def psim(pstack: DevStack) -> Simulator:
    assert pstack.simulator_url
    return Simulator(pstack.simulator_url)


def test_more_turns_than_slots_queue_and_all_finish(
    pclient: AgentClient, psim: Simulator, model: str,
) -> None:
    turns = 24
    psim.script(model, *[{"content": f"answer {i}", "delay_ms": 200} for i in range(turns)])
    started = time.monotonic()
    job_ids = [pclient.submit({"session_id": f"slots-{model}-{i}", "message": "hi",
                               "model": model, "tools": []}) for i in range(turns)]
    results = [wait_job(pclient, job_id, 60) for job_id in job_ids]
    elapsed = time.monotonic() - started
    assert {r.status for r in results} == {JobStatus.SUCCEEDED}, {r.error for r in results}
    assert sorted(r.response or "" for r in results) == sorted(f"answer {i}" for i in range(turns))
    # 24 calls of 0.2 s through 4 slots: they waited their turn, about 6 rounds
    assert elapsed >= (turns / SLOTS) * 0.2 * 0.8


def test_a_hanging_model_call_ends_at_the_client_timeout_and_is_retried(
    pclient: AgentClient, psim: Simulator, model: str, session: str,
) -> None:
    psim.script(model, {"content": "too late", "delay_ms": 10_000}, {"content": "on time"})
    started = time.monotonic()
    job_id = pclient.submit({"session_id": session, "message": "hi", "model": model,
                             "tools": []})
    # Meanwhile the slot it held came back: other turns still run.
    other = pclient.run({"session_id": f"{session}-b", "message": "Hello!", "tools": []},
                        timeout=30)
    assert other.status == JobStatus.SUCCEEDED
    result = wait_job(pclient, job_id, 30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert result.response == "on time"
    assert len(psim.requests(model)) == 2  # the hung call, then the retry
    assert time.monotonic() - started < 10  # not the 10 s the server would have taken


def test_io_bound_tools_run_side_by_side_on_a_threads_tools_worker(
    pclient: AgentClient, psim: Simulator, model: str, session: str,
) -> None:
    calls = [tool_call("sleep_for", {"seconds": 1}, f"s{i}") for i in range(24)]
    psim.script(model, {"tool_calls": calls}, {"content": "rested"})
    job_id = pclient.submit({"session_id": session, "message": "nap", "model": model,
                             "max_function_calls": 24})
    result = wait_job(pclient, job_id, 60)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert [s.content for s in result.sources] == ["slept 1.0"] * 24
    events = [e for _, e in pclient.jobs.read_events(job_id)]
    starts = [e.at for e in events if e.kind == "tool_started"]
    ends = [e.at for e in events if e.kind == "tool_finished"]
    # 24 one-second waits on 32 threads: one round (prefork -c 8 would take three)
    assert max(ends) - min(starts) < 2.5


def test_turns_in_progress_go_before_new_turns(
    pclient: AgentClient, psim: Simulator, session: str,
) -> None:
    """24 one-tool turns on 4 threads, 0.6 s per model call. First in, first out would run
    every turn's first call before any second one (6 rounds, 3.6 s, before the first turn
    could end); with new turns at the lowest priority the first turns end after about two
    model calls, and the last ones start only after them."""
    turns, delay = 24, 600
    psim._call("POST", "/_sim/config", {"latency_ms": delay})  # every call, the demo policy
    try:
        submitted = time.time()
        job_ids = [pclient.submit({"session_id": f"{session}-{i}", "message": "What is 17 * 3?",
                                   "tools": ["calculator"]}) for i in range(turns)]
        results = [wait_job(pclient, job_id, 60) for job_id in job_ids]
    finally:
        psim._call("POST", "/_sim/config", {"latency_ms": 0})
    assert {r.status for r in results} == {JobStatus.SUCCEEDED}, {r.error for r in results}
    assert {len(r.sources) for r in results} == {1}
    ends = sorted(r.updated_at - submitted for r in results)
    assert ends[0] < (turns / SLOTS) * delay / 1000 * 0.7, ends
    assert ends[-1] > ends[SLOTS - 1] + 1.0, ends  # the last turns came after them
