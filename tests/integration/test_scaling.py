"""Horizontal scaling: three agents-queue worker processes share one Redis.

A job's steps are independent tasks that any worker may take; all state is in Redis.
Which worker ran a step is read from that worker's own log (one log file per process,
with the one log line per step: ``job=... step=model:N task=agents.model.step``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from producer.client import AgentClient
from producer.devstack import DevStack, ManagedProcess
from tests.integration.conftest import Simulator, tool_call

pytestmark = pytest.mark.integration

TOOL_ROUNDS = 3


@pytest.fixture
def agents_workers(stack: DevStack) -> Iterator[list[ManagedProcess]]:
    """The session's agents worker plus two more: three processes on the agents queue."""
    extra = [stack.start_worker(["agents"], concurrency=1, name=f"scale-{i}") for i in (1, 2)]
    session_worker = next(p for p in stack.workers if p.name == "agents")
    yield [session_worker, *extra]
    for proc in extra:
        proc.stop()
        stack.workers.remove(proc)


def script_rounds(sim: Simulator, model: str) -> None:
    replies = [
        {"tool_calls": [tool_call("sleep_for", {"seconds": 0.1}, f"r{n}a"),
                        tool_call("echo", {"text": f"round {n}"}, f"r{n}b")]}
        for n in range(TOOL_ROUNDS)
    ]
    sim.script(model, *replies, {"content": "all rounds done"})


def steps_by_worker(workers: list[ManagedProcess], job_id: str) -> dict[str, set[str]]:
    """worker name -> model steps of the job it ran (from its own log)."""
    # step 0 runs inside agents.turn.start, the later ones as agents.model.step
    pattern = re.compile(
        rf"job={job_id} \S+ step=(model:\d+) task=agents\.(?:model\.step|turn\.start)"
    )
    found: dict[str, set[str]] = {}
    for proc in workers:
        steps = set(pattern.findall(proc.log_text()))
        if steps:
            found[proc.name] = steps
    return found


def test_a_busy_sessions_steps_move_between_three_workers_and_all_jobs_complete(
    agents_workers: list[ManagedProcess], client: AgentClient, sim: Simulator,
) -> None:
    busy = f"busy-{uuid.uuid4().hex[:8]}"
    jobs: list[tuple[str, str]] = []  # (session, job id)
    for n in range(4):  # one busy session: its turns run one after another
        model = f"scale-busy-{uuid.uuid4().hex[:8]}-{n}"
        script_rounds(sim, model)
        jobs.append((busy, client.submit({"session_id": busy, "message": f"turn {n}",
                                          "model": model})))
    for _ in range(4):  # and other sessions at the same time, to keep every worker busy
        model = f"scale-other-{uuid.uuid4().hex[:8]}"
        script_rounds(sim, model)
        session = f"other-{uuid.uuid4().hex[:8]}"
        jobs.append((session, client.submit({"session_id": session, "message": "go",
                                             "model": model})))

    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda j: client.wait(j[1], timeout=90), jobs))
    assert [r.status for r in results] == ["succeeded"] * len(jobs), [r.error for r in results]
    assert all(r.model_calls == TOOL_ROUNDS + 1 for r in results)
    assert all(r.response == "all rounds done" for r in results)

    placement = {job_id: steps_by_worker(agents_workers, job_id) for _, job_id in jobs}
    for job_id, by_worker in placement.items():  # every step ran (and was logged) once
        steps = sorted(s for found in by_worker.values() for s in found)
        assert steps == [f"model:{n}" for n in range(TOOL_ROUNDS + 1)], (job_id, by_worker)
    busy_workers = {w for s, job_id in jobs if s == busy for w in placement[job_id]}
    assert len(busy_workers) >= 2, placement  # the busy session moved between workers
    assert any(len(by_worker) >= 2 for by_worker in placement.values()), placement
    used = {w for by_worker in placement.values() for w in by_worker}
    assert used == {p.name for p in agents_workers}, placement  # all three took steps
    # the busy session's memory holds every turn in order, whichever worker ran it
    history = client.history(busy)
    assert [m.content for m in history if m.role == "user"] == [f"turn {n}" for n in range(4)]
