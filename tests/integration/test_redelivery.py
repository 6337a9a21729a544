"""Tasks may run twice (late acks): a duplicated message must not duplicate any effect."""

from __future__ import annotations

import pytest

from producer.client import AgentClient
from producer.contracts import TASK_MODEL_STEP, TASK_START_TURN, JobStatus, StartTurn

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
