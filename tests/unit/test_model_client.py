"""Classifying model API errors: what is retried, after how long, and what fails at once."""

from __future__ import annotations

import httpx2 as httpx
import openai
import pytest

from producer.contracts import ChatMessage, ToolCall
from worker.model_client import ModelError, backoff_seconds, classify_status_error, wire_message


def status_error(status: int, headers: dict[str, str] | None = None) -> ModelError:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx.Response(status, headers=headers or {}, request=request,
                              json={"error": {"message": "server says no"}})
    error = openai.APIStatusError("boom", response=response,
                                  body={"error": {"message": "server says no"}})
    return classify_status_error(error)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_fail_at_once_with_the_servers_message(status: int) -> None:
    error = status_error(status)
    assert not error.transient
    assert str(error) == f"model API error {status}: server says no"


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503])
def test_rate_limits_and_server_errors_are_transient(status: int) -> None:
    assert status_error(status).transient


def test_retry_after_ms_wins_over_retry_after() -> None:
    error = status_error(429, {"retry-after-ms": "1500", "retry-after": "9"})
    assert error.retry_after == 1.5
    assert status_error(429, {"retry-after": "2"}).retry_after == 2.0
    assert status_error(429, {"retry-after": "soon"}).retry_after == 0.0


def test_backoff_uses_the_server_hint_capped() -> None:
    assert backoff_seconds(0, 1.5) == 1.5
    assert backoff_seconds(5, 120.0) == 30.0


def test_backoff_grows_exponentially_with_jitter_but_never_zero() -> None:
    for attempt in range(6):
        base = min(30.0, 0.5 * 2**attempt)
        for _ in range(50):
            delay = backoff_seconds(attempt, 0.0)
            assert base / 2 <= delay <= base


def test_tool_calls_go_out_in_the_nested_wire_format() -> None:
    message = ChatMessage(role="assistant", content=None,
                          tool_calls=[ToolCall(id="c1", name="calc", arguments='{"a": 1}')])
    assert wire_message(message) == {
        "role": "assistant",
        "tool_calls": [{"id": "c1", "type": "function",
                        "function": {"name": "calc", "arguments": '{"a": 1}'}}],
    }


def test_a_raw_completion_becomes_a_model_reply() -> None:
    from worker.model_client import reply_from_completion

    reply = reply_from_completion({
        "choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "calculator", "arguments": '{"expression": "1+1"}'}},
        ]}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    })
    assert reply.content is None
    assert reply.tool_calls == [ToolCall(id="c1", name="calculator",
                                         arguments='{"expression": "1+1"}')]
    assert (reply.usage.prompt_tokens, reply.usage.total_tokens) == (7, 10)
    plain = reply_from_completion({"choices": [{"message": {"content": "hi"}}]})
    assert plain.content == "hi" and plain.tool_calls == [] and plain.usage.total_tokens == 0


@pytest.mark.parametrize("document", [
    {}, {"choices": None}, {"choices": [{}]}, {"choices": [{"message": {"tool_calls": [{}]}}]},
    [], "not an object",
])
def test_a_malformed_completion_is_a_readable_model_error(document: object) -> None:
    from worker.model_client import reply_from_completion

    with pytest.raises(ModelError, match=r"malformed completion|no choices") as raised:
        reply_from_completion(document)
    assert not raised.value.transient


def test_no_choices_is_a_model_error() -> None:
    from worker.model_client import reply_from_completion

    with pytest.raises(ModelError, match="no choices"):
        reply_from_completion({"choices": []})
