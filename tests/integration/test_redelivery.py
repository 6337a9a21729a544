"""Tasks may run twice (late acks): a duplicated message must not duplicate any effect."""

from __future__ import annotations

import json

import pytest

from producer.client import AgentClient
from producer.contracts import (
    TASK_MODEL_STEP,
    TASK_START_TURN,
    TASK_TOOL_RUN,
    JobStatus,
    StartTurn,
)
from tests.integration.conftest import Simulator, tool_call
from tests.integration.stacks import wait_for
from tests.tool_fixtures import record_call_key

pytestmark = pytest.mark.integration


def test_duplicated_start_and_step_messages_write_memory_once(
    client: AgentClient, session: str
) -> None:
    request = {"session_id": session, "message": "What is 2 + 3?", "tools": ["calculator"]}
    job_id = client.submit(request)
    body = StartTurn.model_validate({"job_id": job_id, "request": request}).model_dump(mode="json")
    for _ in range(3):  # the same start message delivered again, at once
        client.celery.send_task(TASK_START_TURN, kwargs={"message": body})
    result = client.wait(job_id, timeout=30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    # a late duplicate of a step that already ran changes nothing either
    client.celery.send_task(TASK_MODEL_STEP, kwargs={"job_id": job_id, "step": 0})
    client.celery.send_task(TASK_START_TURN, kwargs={"message": body})
    again = client.run({"session_id": f"{session}-b", "message": "ping", "tools": []})
    assert again.status == JobStatus.SUCCEEDED  # the workers have drained the duplicates
    assert [m.role for m in client.history(session)] == ["user", "assistant", "tool", "assistant"]
    assert len(result.sources) == 1 and result.sources[0].content == "5"
    assert client.status(job_id) == result


def test_a_copy_of_a_non_idempotent_call_that_is_still_running_waits_for_its_output(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    # A copy of a tool message (its dispatcher was redelivered) reaches a tools worker
    # while the first copy is still running there: the copy must neither run the tool
    # again nor answer "outcome unknown", which would win over the real output.
    key = f"{session}-dup"
    call = tool_call("record_call", {"key": key, "seconds": 2}, "c1")
    sim.script(model, {"tool_calls": [call]}, {"content": "done"})
    job_id = client.submit({"session_id": session, "message": "record", "model": model})
    wait_for(lambda: runs(client, key) == 1, 15, "the side effect")
    client.celery.send_task(
        TASK_TOOL_RUN, args=[job_id, {"id": "c1", "name": "record_call",
                                      "arguments": json.dumps({"key": key, "seconds": 2})},
                             ["record_call"]], queue="tools")
    result = client.wait(job_id, timeout=30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert [(s.content, s.is_error) for s in result.sources] == [(f"recorded {key}", False)]
    assert runs(client, key) == 1, "the tool ran a second time"


def runs(client: AgentClient, key: str) -> int:
    return int(client.jobs.redis.get(record_call_key(key)) or 0)
