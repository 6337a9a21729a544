"""Model parameters, JSON answers and image input, through the client and the CLI, against
the session's workers and the simulator (which records and validates what it was sent)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from producer.client import AgentClient
from producer.devstack import DevStack
from tests.integration.conftest import Simulator, tool_call

pytestmark = pytest.mark.integration

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}},
          "required": ["city"], "additionalProperties": False}
PARAMS: dict[str, Any] = {
    "temperature": 0.25, "top_p": 0.9, "max_tokens": 64, "seed": 42, "stop": ["END"],
    "parallel_tool_calls": False,
    "response_format": {"type": "json_schema",
                        "json_schema": {"name": "place", "schema": SCHEMA, "strict": True}},
}
SENT_AS = {**PARAMS, "max_completion_tokens": 64}
del SENT_AS["max_tokens"]


def cli(stack: DevStack, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", "--redis-url", str(stack.redis_url), *argv],
        capture_output=True, text=True, timeout=60, env=stack.python_env({}),
    )


def test_parameters_reach_every_model_call_of_the_turn_and_the_answer_is_parsed(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"tool_calls": [tool_call("calculator", {"expression": "1+1"}, "c1")]},
               {"content": '{"city": "Paris"}'})
    result = client.run({"session_id": session, "message": "where?", "model": model,
                         "metadata": {"ticket": "T-1", "team": "ops"}, **PARAMS}, 30)
    assert result.status == "succeeded", result.error
    assert result.parsed == {"city": "Paris"}
    assert result.metadata == {"ticket": "T-1", "team": "ops"}
    calls = sim.requests(model)
    assert len(calls) == 2
    for body in calls:
        assert {name: body.get(name) for name in SENT_AS} == SENT_AS
        assert "max_tokens" not in body and "metadata" not in body  # metadata stays ours
    assert client.status(result.job_id).metadata == {"ticket": "T-1", "team": "ops"}


def test_parameters_not_set_are_not_sent(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "plain"})
    result = client.run({"session_id": session, "message": "hi", "model": model}, 30)
    assert result.parsed is None and result.metadata is None
    [body] = sim.requests(model)
    assert not {*SENT_AS, "max_tokens", "metadata"} & set(body)


def test_a_json_format_with_an_answer_that_is_no_json_fails_naming_the_field(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "Paris, probably"})
    result = client.run({"session_id": session, "message": "answer in json", "model": model,
                         "response_format": {"type": "json_object"}}, 30)
    assert result.status == "failed"
    assert result.error and result.error.startswith("response_format: the model's final "
                                                    "answer is not valid JSON")
    assert client.history(session) == []  # a failed turn leaves no memory


def test_the_simulator_refuses_what_openai_refuses(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    # OpenAI: json_object needs the word "json" in the messages; the job reports the 400.
    result = client.run({"session_id": session, "message": "where?", "model": model,
                         "response_format": {"type": "json_object"}}, 30)
    assert result.status == "failed"
    assert "model API error 400" in (result.error or "")
    assert "must contain the word 'json'" in (result.error or "")


def test_an_image_message_is_sent_and_stored_as_given(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    parts = [{"type": "text", "text": "What is in this picture?"},
             {"type": "image_url", "image_url": {"url": "https://example.com/cat.png",
                                                  "detail": "low"}}]
    sim.script(model, {"content": "A cat."}, {"content": "Still a cat."})
    assert client.run({"session_id": session, "message": parts, "model": model},
                      30).response == "A cat."
    assert client.run({"session_id": session, "message": "and now?", "model": model},
                      30).response == "Still a cat."
    first, second = sim.requests(model)
    assert first["messages"][-1] == {"role": "user", "content": parts}
    assert second["messages"][0] == {"role": "user", "content": parts}  # from memory
    stored = client.history(session)[0]
    assert stored.model_dump(mode="json", exclude_none=True)["content"] == parts


def test_cli_flags_set_parameters_images_and_metadata(
    stack: DevStack, sim: Simulator, model: str, session: str, tmp_path: Path
) -> None:
    schema = tmp_path / "place.json"
    schema.write_text(json.dumps(SCHEMA))
    sim.script(model, {"content": '{"city": "Rome"}'})
    done = cli(stack, "submit", "where is this?", "--session", session, "--model", model,
               "--temperature", "0.5", "--top-p", "0.5", "--max-tokens", "20", "--seed", "7",
               "--stop", "END", "--stop", "STOP", "--json-schema", str(schema),
               "--image", "https://example.com/rome.jpg", "--metadata", "ticket=T-9",
               "--wait", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["parsed"] == {"city": "Rome"} and result["metadata"] == {"ticket": "T-9"}
    [body] = sim.requests(model)
    assert body["temperature"] == 0.5 and body["top_p"] == 0.5 and body["seed"] == 7
    assert body["max_completion_tokens"] == 20 and body["stop"] == ["END", "STOP"]
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA
    assert body["messages"][-1]["content"][1] == {
        "type": "image_url", "image_url": {"url": "https://example.com/rome.jpg"}}
    refused = cli(stack, "submit", "hi", "--session", session, "--temperature", "3")
    assert refused.returncode == 2
    assert "temperature: Input should be less than or equal to 2" in refused.stderr
