"""The model parameters of a request, as the chat completions call sends them.

Each parameter is sent only when the request set it, so a server's own defaults apply
otherwise (and servers that do not know a parameter never see it unless asked for).
"""

from __future__ import annotations

import json
import os
from typing import Any

from producer.contracts import ChatRequest
from producer.request_params import wants_json

MAX_TOKENS_PARAMS = ("max_completion_tokens", "max_tokens")


def max_tokens_param() -> str:
    """Which name ``max_tokens`` is sent under (``AGENT_MAX_TOKENS_PARAM``).

    OpenAI deprecated ``max_tokens`` for ``max_completion_tokens`` (reasoning models refuse
    the old name); some OpenAI-compatible servers know only the old one.
    """
    name = os.environ.get("AGENT_MAX_TOKENS_PARAM", "max_completion_tokens")
    if name not in MAX_TOKENS_PARAMS:
        raise ValueError(f"AGENT_MAX_TOKENS_PARAM must be one of {', '.join(MAX_TOKENS_PARAMS)}")
    return name


def call_options(
    request: ChatRequest, with_tools: bool, tokens_param: str | None = None
) -> dict[str, Any]:
    """The parameters the request set, named as the API names them.

    ``parallel_tool_calls`` goes only with tools: the API refuses it without them.
    """
    options: dict[str, Any] = {}
    for name in ("temperature", "top_p", "seed", "stop", "response_format"):
        value = getattr(request, name)
        if value is not None:
            options[name] = value
    if request.max_tokens is not None:
        options[tokens_param or max_tokens_param()] = request.max_tokens
    if with_tools and request.parallel_tool_calls is not None:
        options["parallel_tool_calls"] = request.parallel_tool_calls
    return options


class UnparsableAnswer(ValueError):
    """A JSON response_format was asked for and the final answer is no JSON object."""


def parse_answer(request: ChatRequest, response: str | None) -> Any:
    """The final answer parsed as JSON when the request asked for a JSON format, else None.

    Raises UnparsableAnswer (the job then fails, naming response_format) otherwise: a
    caller who asked for a schema must not get a success without the object.
    """
    if not wants_json(request.response_format):
        return None
    try:
        parsed = json.loads(response or "")
    except ValueError as exc:
        raise UnparsableAnswer(
            f"response_format: the model's final answer is not valid JSON ({exc}): "
            f"{(response or '')[:200]!r}"
        ) from None
    if not isinstance(parsed, dict):
        raise UnparsableAnswer(
            f"response_format: the model's final answer is JSON but not an object: "
            f"{(response or '')[:200]!r}"
        )
    return parsed
