"""Redis unreachable mid-task is infrastructure trouble, never a job failure.

A task that cannot reach Redis goes back to the queue (Reject with requeue) instead of
failing its job, a retry that could not be published is requeued rather than dropped,
and a tool fan-out broken by the outage is sent again rather than failing the job.
"""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest
import redis
from celery.exceptions import ChordError, Reject
from kombu.exceptions import OperationalError

from producer import keys
from producer.contracts import ChatRequest, ToolCall
from producer.jobstore import JobStore
from worker import orchestrate
from worker.context import WorkerContext
from worker.settings import WorkerSettings
from worker.tasks import base, turn_tasks
from worker.turn import ModelReply, apply_model_reply, new_turn


class Down:
    """Any store call raises what redis-py raises once its own retries are spent."""

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

        return fail


class FailRecorder:
    def __init__(self) -> None:
        self.failed: list[tuple[str, str]] = []

    def fail(self, job_id: str, error: str, step: int | None = None) -> bool:
        self.failed.append((job_id, error))
        return True


@pytest.fixture
def down(monkeypatch: pytest.MonkeyPatch) -> FailRecorder:
    recorder = FailRecorder()

    class Ctx:
        turns = Down()
        jobs = recorder

    monkeypatch.setattr(turn_tasks, "get_context", lambda: Ctx())
    monkeypatch.setattr(base, "get_context", lambda: Ctx())
    return recorder


def test_a_task_that_cannot_reach_redis_is_requeued_not_failed(down: FailRecorder) -> None:
    with pytest.raises(Reject) as raised:
        turn_tasks.model_step(job_id="job-0001", step=0)  # through the task's __call__
    assert raised.value.requeue is True
    assert down.failed == []


def test_a_retry_that_could_not_be_published_is_requeued_not_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Celery's Task.retry raises Reject(requeue=False) when publishing the retry fails:
    # the message would be acknowledged and the job lost.
    def unpublished_retry(*args: Any, **kwargs: Any) -> Any:
        raise Reject(OperationalError("Error 111 connecting"), requeue=False)

    monkeypatch.setattr(turn_tasks.model_step, "run", unpublished_retry)
    with pytest.raises(Reject) as raised:
        turn_tasks.model_step(job_id="job-0001", step=0)
    assert raised.value.requeue is True


def test_on_failure_does_not_fail_a_job_for_a_connection_error(down: FailRecorder) -> None:
    error = redis.ConnectionError("Connection closed by server.")
    turn_tasks.model_step.on_failure(error, "t1", (), {"job_id": "job-0001"}, None)
    assert down.failed == []
    turn_tasks.model_step.on_failure(ValueError("bug"), "t1", (), {"job_id": "job-0001"}, None)
    assert [job for job, _ in down.failed] == ["job-0001"]


@pytest.mark.parametrize("exc", [
    redis.ConnectionError("Error 111"),
    OperationalError("Error 111 connecting"),
    ChordError("Dependency 4f1 raised ConnectionError('Error 111 connecting')"),
    ChordError("Callback error: OperationalError('Connection refused')"),
    redis.exceptions.NoScriptError("No matching script. Please use EVAL."),
    ChordError("Dependency 4f1 raised NoScriptError('No matching script')"),
])
def test_infrastructure_errors_are_recognised(exc: BaseException) -> None:
    assert base.redis_down(exc)


@pytest.mark.parametrize(
    "exc", [ValueError("x"), ChordError("Dependency 4f1 raised KeyError('a')")]
)
def test_other_errors_are_not_infrastructure(exc: BaseException) -> None:
    assert not base.redis_down(exc)


@pytest.fixture
def tools_ctx(monkeypatch: pytest.MonkeyPatch) -> tuple[WorkerContext, list[int]]:
    context = WorkerContext(WorkerSettings.from_env())
    context.__dict__["jobs"] = JobStore(fakeredis.FakeRedis(decode_responses=True))
    request = ChatRequest(session_id="s1", message="hi")
    state = new_turn(job_id="job-0001", request=request, model="m", token_limit=1000,
                     tool_names=["calculator"], memory_length=0, created_at=0.0,
                     deadline_at=None)
    assert context.turns.create(state)
    reply = ModelReply(content=None, tool_calls=[
        ToolCall(id="c1", name="calculator", arguments='{"expression": "1+1"}')])
    assert context.turns.advance(state, apply_model_reply(state, reply))
    sent: list[int] = []
    monkeypatch.setattr(turn_tasks, "get_context", lambda: context)
    monkeypatch.setattr(orchestrate, "enqueue_tool_fanout", lambda s: sent.append(s.version))
    return context, sent


def test_a_fanout_broken_by_an_outage_is_sent_again_not_failed(
    tools_ctx: tuple[WorkerContext, list[int]],
) -> None:
    ctx, sent = tools_ctx
    state = ctx.turns.load("job-0001")
    assert state is not None and state.phase == "tools"
    exc = ChordError("Dependency 4f1 raised ConnectionError('Error 111 connecting')")
    turn_tasks.abort_turn(None, exc, None, job_id="job-0001", version=state.version)
    assert sent == [state.version]
    assert not ctx.jobs.is_final("job-0001")
    # a late errback of an older round does not send the current round again
    turn_tasks.abort_turn(None, exc, None, job_id="job-0001", version=state.version - 1)
    assert sent == [state.version]
    # bounded: an outage that keeps breaking the fan-out ends the job with its reason
    for _ in range(10):
        turn_tasks.abort_turn(None, exc, None, job_id="job-0001", version=state.version)
    assert ctx.jobs.is_final("job-0001")
    job_error = ctx.jobs.redis.get(keys.job_final("job-0001"))
    assert job_error is not None


def test_a_fanout_failing_for_another_reason_fails_the_job(
    tools_ctx: tuple[WorkerContext, list[int]],
) -> None:
    ctx, sent = tools_ctx
    turn_tasks.abort_turn(None, KeyError("x"), None, job_id="job-0001")
    assert sent == [] and ctx.jobs.is_final("job-0001")


def test_an_admit_retried_after_a_lost_reply_queues_the_job_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from celery import Celery

    from producer import session_order
    from producer.session_order import SessionOrder

    monkeypatch.setattr(session_order, "send_start", lambda *args, **kwargs: None)

    store = fakeredis.FakeRedis(decode_responses=True)
    order = SessionOrder(store, Celery("t"))
    assert order.admit("job-a", "s1", "{}", "{}", {}, 10) is True
    assert order.admit("job-b", "s1", "{}", "{}", {}, 10) is False
    assert order.admit("job-b", "s1", "{}", "{}", {}, 10) is False  # the retry
    assert store.lrange(keys.session_jobs("s1"), 0, -1) == ["job-a", "job-b"]


def test_a_tool_call_whose_scripts_vanish_in_a_restart_is_requeued_not_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # CI saw a job fail with "tool fan-out failed: NoScriptError": a Redis restart
    # (scripts are not persisted) fell between a script's load and its EVALSHA, on a
    # script's first use in a fresh pool process. That is a Redis restart, not a fault of
    # the job: the call goes back to the queue, and its rerun loads the script again.
    from worker.tasks import tool_tasks

    store = fakeredis.FakeRedis(decode_responses=True)
    load = store.script_load

    def load_then_restart(script: str) -> str:
        sha = load(script)
        store.script_flush()  # the restart, between the load and the EVALSHA
        return sha

    monkeypatch.setattr(store, "script_load", load_then_restart)
    context = WorkerContext(WorkerSettings.from_env())
    context.__dict__["jobs"] = JobStore(store)
    monkeypatch.setattr(tool_tasks, "get_context", lambda: context)
    monkeypatch.setattr(base, "get_context", lambda: context)
    call = {"id": "c1", "name": "calculator", "arguments": '{"expression": "1+1"}'}
    with pytest.raises(Reject) as raised:
        tool_tasks.run_tool("job-0001", call, ["calculator"])  # through the task's __call__
    assert raised.value.requeue is True
    assert not context.jobs.is_final("job-0001")
