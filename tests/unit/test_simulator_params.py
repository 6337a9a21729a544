"""The simulator validates the model parameters the way OpenAI does (400, param, code)."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.chat import validate_chat_request
from simulator.errors import ApiError

TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.mark.parametrize(("extra", "param", "code", "text"), [
    ({"temperature": 2.1}, "temperature", "decimal_above_max_value", "Expected a value <= 2"),
    ({"temperature": -1}, "temperature", "decimal_below_min_value", "Expected a value >= 0"),
    ({"temperature": "hot"}, "temperature", "invalid_type", "expected a decimal"),
    ({"top_p": 1.01}, "top_p", "decimal_above_max_value", "Expected a value <= 1"),
    ({"max_completion_tokens": 0}, "max_completion_tokens", "integer_below_min_value", ">= 1"),
    ({"max_tokens": 1.5}, "max_tokens", "invalid_type", "expected an integer"),
    ({"max_tokens": 5, "max_completion_tokens": 5}, "max_tokens", None, "cannot both be set"),
    ({"seed": "x"}, "seed", "invalid_type", "expected an integer"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "array_above_max_length", "maximum length 4"),
    ({"stop": 3}, "stop", "invalid_type", "a string or an array of strings"),
    ({"response_format": {"type": "yaml"}}, "response_format.type", "invalid_value", "yaml"),
    ({"response_format": {"type": "json_object"}}, "messages", None, "the word 'json'"),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema",
     "missing_required_parameter", "Missing required parameter"),
    ({"parallel_tool_calls": False}, "parallel_tool_calls", None, "only allowed when 'tools'"),
    ({"metadata": {"a": "b"}}, "metadata", None, "only allowed when 'store' is enabled"),
])
def test_refused_like_openai(extra: dict[str, Any], param: str, code: str | None,
                             text: str) -> None:
    with pytest.raises(ApiError) as caught:
        validate_chat_request(body(**extra))
    error = caught.value
    assert (error.status, error.param, error.code) == (400, param, code)
    assert text in error.message


def test_valid_parameters_are_accepted() -> None:
    validate_chat_request(body(
        temperature=0, top_p=0.5, max_completion_tokens=10, seed=7, stop="END",
        parallel_tool_calls=True, tools=TOOLS,
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": {}}},
    ))
    validate_chat_request({"model": "m", "response_format": {"type": "json_object"},
                           "messages": [{"role": "user", "content": "answer in JSON"}]})
