"""SIGKILL a worker mid-task while a second one runs: nothing is lost or done twice.

Two variants of each crash on the tools queue (prefork): the pool child dies (the master
requeues the task at once, reject-on-worker-lost) and the whole worker dies (its task
comes back once its lease, here a few seconds, runs out: worker/leases.py). The agents
queue runs on threads, so there the whole worker is the only process to lose. Each job
still completes, memory holds each message exactly once, and a non-idempotent tool never
runs a second time.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from producer.client import AgentClient
from producer.contracts import JobStatus
from producer.devstack import DevStack, ManagedProcess
from tests.integration.conftest import Simulator, tool_call
from tests.integration.stacks import (
    VISIBILITY_TIMEOUT,
    new_stack,
    pool_children,
    wait_for,
    wait_job,
    worker_that_received,
)
from tests.tool_fixtures import record_call_key

pytestmark = pytest.mark.integration

VARIANTS = ["pool-child", "whole-worker"]  # tools workers (prefork)
AGENTS_VARIANTS = ["whole-worker"]  # agents workers (threads): one process
JOB_TIMEOUT = VISIBILITY_TIMEOUT + 25


@dataclass
class Fleet:
    stack: DevStack
    agents: list[ManagedProcess] = field(default_factory=list)
    tools: list[ManagedProcess] = field(default_factory=list)
    started: int = 0

    def top_up(self) -> None:
        """Two live workers per queue, replacing any that a test killed."""
        for queue, workers in (("agents", self.agents), ("tools", self.tools)):
            workers[:] = [w for w in workers if w.alive]
            while len(workers) < 2:
                self.started += 1
                workers.append(self.stack.start_worker([queue], 1, f"{queue}{self.started}"))

    def offsets(self) -> dict[str, int]:
        return {w.name: w.log_size() for w in self.agents + self.tools}


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with new_stack("stack-kill", {"AGENT_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT)}) as stack:
        stack.start_redis(appendonly=True)  # its data stays on disk for the secret scan
        stack.start_simulator()
        group = Fleet(stack)
        group.top_up()
        yield group


@pytest.fixture
def ready(fleet: Fleet) -> Fleet:
    fleet.top_up()
    return fleet


@pytest.fixture
def kclient(fleet: Fleet) -> Iterator[AgentClient]:
    with AgentClient(fleet.stack.redis_url) as agent_client:
        yield agent_client


@pytest.fixture
def ksim(fleet: Fleet) -> Simulator:
    assert fleet.stack.simulator_url
    return Simulator(fleet.stack.simulator_url)


def crash(worker: ManagedProcess, variant: str) -> None:
    if variant == "pool-child":
        [child] = wait_for(lambda: pool_children(worker) or None, 5, "the pool child")
        os.kill(child, signal.SIGKILL)
    else:
        worker.kill()


def stored(client: AgentClient, session: str) -> list[tuple[str, Any, Any]]:
    return [
        (m.role, m.content, [c.id for c in m.tool_calls or []] or m.tool_call_id)
        for m in client.history(session)
    ]


@pytest.mark.parametrize("variant", AGENTS_VARIANTS)
def test_kill_during_a_model_call(
    ready: Fleet, kclient: AgentClient, ksim: Simulator, model: str, session: str,
    variant: str,
) -> None:
    ksim.script(model, {"content": "never delivered", "delay_ms": 3000}, {"content": "answer"})
    since = ready.offsets()
    job_id = kclient.submit({"session_id": session, "message": "hi", "model": model,
                             "tools": []})
    wait_for(lambda: len(ksim.requests(model)) == 1, 15, "the model call to start")
    crash(worker_that_received(ready.agents, "agents.turn.start", since, 5), variant)
    result = wait_job(kclient, job_id, JOB_TIMEOUT)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert result.response == "answer"
    assert len(ksim.requests(model)) == 2  # the killed call, then the redelivered step
    assert stored(kclient, session) == [("user", "hi", None), ("assistant", "answer", None)]


@pytest.mark.parametrize("variant", VARIANTS)
def test_kill_during_an_idempotent_tool_runs_it_again(
    ready: Fleet, kclient: AgentClient, ksim: Simulator, model: str, session: str,
    variant: str,
) -> None:
    ksim.script(model, {"tool_calls": [tool_call("sleep_for", {"seconds": 2}, "c1")]},
                {"content": "done"})
    since = ready.offsets()
    job_id = kclient.submit({"session_id": session, "message": "nap", "model": model})
    holder = worker_that_received(ready.tools, "agents.tool.run", since, 15)
    wait_for(lambda: any(e.kind == "tool_started" for _, e in kclient.jobs.read_events(job_id)),
             5, "the tool to start")
    crash(holder, variant)
    result = wait_job(kclient, job_id, JOB_TIMEOUT)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert [(s.content, s.is_error) for s in result.sources] == [("slept 2.0", False)]
    assert stored(kclient, session) == [
        ("user", "nap", None), ("assistant", None, ["c1"]), ("tool", "slept 2.0", "c1"),
        ("assistant", "done", None),
    ]


@pytest.mark.parametrize("variant", VARIANTS)
def test_kill_during_a_non_idempotent_tool_never_runs_it_twice(
    ready: Fleet, kclient: AgentClient, ksim: Simulator, model: str, session: str,
    variant: str,
) -> None:
    key = f"{session}-{variant}"
    ksim.script(model, {"tool_calls": [tool_call("record_call", {"key": key, "seconds": 2},
                                                  "c1")]},
                {"content": "done"})
    counter = redis.Redis.from_url(ready.stack.redis_url or "")
    since = ready.offsets()
    job_id = kclient.submit({"session_id": session, "message": "pay", "model": model})
    wait_for(lambda: counter.get(record_call_key(key)) == b"1", 15, "the side effect")
    crash(worker_that_received(ready.tools, "agents.tool.run", since, 5), variant)
    result = wait_job(kclient, job_id, JOB_TIMEOUT)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert counter.get(record_call_key(key)) == b"1", "the tool ran a second time"
    [source] = result.sources
    assert source.is_error
    assert source.content.startswith("Error: the outcome of tool record_call is unknown")
    # the model was told, and memory holds the call and its (error) result once each
    assert ksim.requests(model)[1]["messages"][-1]["content"] == source.content
    assert stored(kclient, session) == [
        ("user", "pay", None), ("assistant", None, ["c1"]), ("tool", source.content, "c1"),
        ("assistant", "done", None),
    ]


# (c) Between polls of an assistant run. Each scripted run decision takes a few seconds
# server-side, so the job sits in the poll loop (a poll task re-enqueued with a
# countdown, a worker slot free in between) when its worker is killed.
RUN_STEP_MS = 2500


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the Assistants API is retired
@pytest.mark.parametrize("protocol", ["responses", "assistants"])
@pytest.mark.parametrize("variant", AGENTS_VARIANTS)
def test_kill_between_polls_of_an_assistant_run(
    ready: Fleet, kclient: AgentClient, ksim: Simulator, model: str, session: str,
    variant: str, protocol: str,
) -> None:
    ksim.script(
        model,
        {"tool_calls": [tool_call("calculator", {"expression": "6 * 7"}, "k1")],
         "delay_ms": RUN_STEP_MS},
        {"content": "It is 42.", "delay_ms": RUN_STEP_MS},
    )
    before = ksim.stats()
    since = ready.offsets()
    job_id = kclient.submit({"session_id": session, "message": "6 times 7?", "model": model,
                             "mode": "assistant", "protocol": protocol,
                             "poll_interval": 0.3})

    def polls() -> int:
        return sum(e.kind == "run_polled" for _, e in kclient.jobs.read_events(job_id))

    wait_for(lambda: polls() >= 1, 15, "the run's first poll")
    # the worker that polled it: the job is between polls (next one on a countdown)
    crash(worker_that_received(ready.agents, "agents.run.poll", since, 5), variant)
    result = wait_job(kclient, job_id, JOB_TIMEOUT)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert result.response == "It is 42."
    assert [(s.tool_call_id, s.content) for s in result.sources] == [("k1", "42")]
    # one run, tool outputs submitted once
    after = ksim.stats()
    if protocol == "assistants":
        assert after["run_created"] - before["run_created"] == 1
        assert after["tool_outputs_submitted"] - before["tool_outputs_submitted"] == 1
        assert len(ksim.requests(model, "runs.submit_tool_outputs")) == 1
    else:  # the outputs go back as the input of a second (chained) response
        creates = ksim.requests(model, "responses.create")
        assert len(creates) == 2
        assert [item["call_id"] for item in creates[1]["input"]] == ["k1"]
    assert [(m.role, m.content) for m in kclient.history(session)] == [
        ("user", "6 times 7?"), ("assistant", "It is 42."),
    ]
    # a poll after the kill happened: the run was followed to its end by the other worker
    assert polls() >= 2
