"""Nobody in where they don't belong: pickle refused, garbage messages survived, no way
from a tool name to an arbitrary Python callable."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producer.client import AgentClient
from producer.contracts import TASK_MODEL_STEP, TASK_START_TURN, TASK_TOOL_RUN, JobStatus
from producer.devstack import DevStack
from tests.integration.conftest import Simulator, tool_call
from tests.integration.stacks import wait_for

pytestmark = pytest.mark.integration


def worker(stack: DevStack, name: str) -> Any:
    return next(p for p in stack.workers if p.name == name)


def test_a_pickled_message_is_refused_and_logged_and_the_worker_serves_on(
    stack: DevStack, client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    agents = worker(stack, "agents")
    since = agents.log_size()
    job_id = str(uuid.uuid4())
    request = {"session_id": session, "message": "pickled", "model": model}
    client.celery.send_task(
        TASK_START_TURN, kwargs={"message": {"job_id": job_id, "request": request}},
        serializer="pickle",
    )
    line = agents.wait_for_log(r"untrusted content|ContentDisallowed", timeout=15, since=since)
    assert "application/x-python-serialize" in line or "pickle" in line
    assert agents.alive
    sim.script(model, {"content": "json still works"})
    result = client.run({"session_id": session, "message": "next", "model": model}, timeout=20)
    assert result.response == "json still works"
    assert client.status(job_id) is None, "the pickled job never ran"
    assert client.jobs.redis.llen("agents") == 0, "the refused message was not requeued"


# -- the model cannot name its way into other Python callables ---------------------------

@pytest.mark.parametrize("name", ["__import__", "os.system", "eval", "builtins.exec",
                                  "tests.tool_fixtures.echo", "../echo", "execute_tool_call",
                                  "record_call"])
def test_tool_names_outside_the_allowed_registry_are_errors_not_calls(
    client: AgentClient, sim: Simulator, model: str, session: str, name: str
) -> None:
    # record_call is registered but not allowed for this request
    arguments = {"command": "touch /tmp/pwned"} if name != "record_call" else {"key": session}
    sim.script(model, {"tool_calls": [tool_call(name, arguments, "c1")]}, {"content": "ok"})
    result = client.run({"session_id": session, "message": "x", "model": model,
                         "tools": ["echo", "calculator"]}, timeout=20)
    assert result.status == JobStatus.SUCCEEDED, result.error
    [source] = result.sources
    assert source.is_error and source.content == f"Tool with name {name} not found"
    assert client.jobs.redis.get(f"test:record_call:{session}") is None


# -- fuzzing the worker's message validation -----------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=8,
)
requests = st.fixed_dictionaries(
    {},
    optional={
        "session_id": st.sampled_from(["fz-s1", "bad session", ""]) | json_scalars,
        "message": st.text(max_size=20) | json_values,
        "tools": st.lists(st.sampled_from(["echo", "__import__", "calculator"])) | json_values,
        "max_function_calls": st.integers(-3, 3) | json_values,
        "model": st.just("fuzz-unscripted") | json_values,
        "bogus": json_values,
    },
)
# (task name, kwargs builder taking a plausible job id)
messages = st.one_of(
    st.tuples(st.just(TASK_START_TURN), st.builds(
        lambda req: {"message": {"request": req}}, requests)),
    st.tuples(st.just(TASK_START_TURN), st.dictionaries(st.text(max_size=8), json_values,
                                                         max_size=3)),
    st.tuples(st.just(TASK_MODEL_STEP), st.fixed_dictionaries(
        {"step": st.integers(-2, 5) | json_values},
        optional={"tool_outputs": json_values})),
    st.tuples(st.just(TASK_TOOL_RUN), st.fixed_dictionaries(
        {"call": json_values | st.fixed_dictionaries(
            {"id": st.text(max_size=5), "name": st.sampled_from(["echo", "os.system"]),
             "arguments": st.text(max_size=10)}),
         "allowed": json_values})),
)


def _ended(client: AgentClient, job_id: str) -> JobStatus | None:
    job = client.status(job_id)
    return job.status if job is not None and job.status.terminal else None


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(messages)
def test_fuzzed_task_messages_fail_readably_and_never_stop_a_worker(
    stack: DevStack, client: AgentClient, message: tuple[str, dict[str, Any]]
) -> None:
    task, kwargs = message
    job_id = str(uuid.uuid4())
    if task == TASK_START_TURN and isinstance(kwargs.get("message"), dict):
        kwargs["message"]["job_id"] = job_id
    elif task != TASK_START_TURN:
        kwargs["job_id"] = job_id
    client.celery.send_task(task, kwargs=kwargs)
    if task == TASK_START_TURN and "message" in kwargs:
        # a start message with a plausible job id always ends its job: the request was
        # valid (the demo model answers) or it failed with a readable validation error
        status = wait_for(lambda: _ended(client, job_id), 20, f"job {job_id} to end")
        job = client.status(job_id)
        assert job is not None
        if status == JobStatus.FAILED:
            error = job.error or ""
            assert error and "Traceback" not in error and len(error) < 4000, error
    assert all(w.alive for w in stack.workers if w.name in ("agents", "tools"))


def test_after_the_fuzzing_a_normal_job_still_completes(
    stack: DevStack, client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    time.sleep(0.5)  # let the last fuzzed messages drain
    sim.script(model, {"tool_calls": [tool_call("echo", {"text": "alive"}, "c1")]},
               {"content": "still serving"})
    result = client.run({"session_id": session, "message": "x", "model": model}, timeout=20)
    assert result.status == JobStatus.SUCCEEDED and result.response == "still serving"
    assert all(w.alive for w in stack.workers if w.name in ("agents", "tools"))
