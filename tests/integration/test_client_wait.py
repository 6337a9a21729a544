"""Waiting on a job outlasts quiet spells longer than the Redis client's socket timeout."""

from __future__ import annotations

import pytest

from producer.client import AgentClient
from producer.contracts import JobStatus
from tests.integration.conftest import Simulator

pytestmark = pytest.mark.integration


def test_wait_survives_a_model_call_longer_than_the_socket_timeout(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    # redis-py 8 closes a read after 5 s by default (socket_timeout); the job's events
    # stream is silent while the model thinks, so a 6.5 s call must not break wait().
    sim.script(model, {"content": "slow but fine", "delay_ms": 6500})
    result = client.run({"session_id": session, "message": "x", "model": model}, timeout=30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert result.response == "slow but fine"
