"""A run's tool fan-out broken by a Redis outage is sent again, not failed (bounded)."""

from __future__ import annotations

import fakeredis
import pytest
from celery.exceptions import ChordError

from producer.contracts import ChatRequest, ToolCall
from producer.jobstore import JobStore
from worker.assistant import flow
from worker.assistant.state import RunState
from worker.assistant.store import Transition
from worker.context import WorkerContext
from worker.settings import WorkerSettings
from worker.tasks import assistant_tasks

OUTAGE = ChordError("Dependency 4f1 raised ConnectionError('Error 111 connecting')")


@pytest.fixture
def waiting_for_tools(monkeypatch: pytest.MonkeyPatch) -> tuple[WorkerContext, list[int]]:
    context = WorkerContext(WorkerSettings.from_env())
    context.__dict__["jobs"] = JobStore(fakeredis.FakeRedis(decode_responses=True))
    state = RunState(
        job_id="job-0001", session_id="s1", protocol="responses", model="m",
        request=ChatRequest(session_id="s1", message="hi", mode="assistant"),
        tool_names=["calculator"], created_at=0.0, phase="tools", tool_rounds=1,
        response_id="resp_1",
        pending_calls=[ToolCall(id="c1", name="calculator", arguments='{"expression": "1"}')],
    )
    assert context.runs.save(Transition.of(None, state))
    sent: list[int] = []
    monkeypatch.setattr(assistant_tasks, "get_context", lambda: context)
    monkeypatch.setattr(flow, "send_tool_round", lambda ctx, s: sent.append(s.tool_rounds))
    return context, sent


def test_an_outage_sends_the_round_again(
    waiting_for_tools: tuple[WorkerContext, list[int]],
) -> None:
    ctx, sent = waiting_for_tools
    assistant_tasks.abort_run(None, OUTAGE, None, job_id="job-0001", tool_round=1)
    assert sent == [1] and not ctx.jobs.is_final("job-0001")
    # the errback of an older round sends nothing
    assistant_tasks.abort_run(None, OUTAGE, None, job_id="job-0001", tool_round=0)
    assert sent == [1]
    # bounded: an outage that keeps breaking the round ends the job
    for _ in range(10):
        assistant_tasks.abort_run(None, OUTAGE, None, job_id="job-0001", tool_round=1)
    assert ctx.jobs.is_final("job-0001")


def test_another_failure_of_the_fan_out_fails_the_job(
    waiting_for_tools: tuple[WorkerContext, list[int]],
) -> None:
    ctx, sent = waiting_for_tools
    assistant_tasks.abort_run(None, KeyError("x"), None, job_id="job-0001", tool_round=1)
    assert sent == [] and ctx.jobs.is_final("job-0001")
