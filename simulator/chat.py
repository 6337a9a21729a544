"""Chat-completions request validation and response building (no I/O, no state)."""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from simulator.errors import ApiError, bad_request
from simulator.params import validate_model_params
from simulator.streaming import validate_stream_options
from simulator.text_extract import content_text

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass(frozen=True)
class ChatRequest:
    """The parts of a validated chat request the simulator acts on."""

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    tool_choice: str | dict[str, Any] | None
    parallel_tool_calls: bool
    stream: bool = False


@dataclass(frozen=True)
class OutToolCall:
    """A tool call in a response; ``arguments`` is the JSON text sent verbatim."""

    id: str
    name: str
    arguments: str


def _check_content(message: dict[str, Any], i: int, *, required: bool) -> None:
    content = message.get("content")
    param = f"messages[{i}].content"
    if content is None:
        if required:
            raise bad_request(f"Missing required parameter: '{param}'.", param=param)
        return
    if isinstance(content, str):
        return
    if isinstance(content, list) and all(isinstance(p, dict) and "type" in p for p in content):
        return
    raise bad_request(
        f"Invalid type for '{param}': expected a string or an array of content parts.",
        param=param,
        code="invalid_type",
    )


def _check_assistant_calls(message: dict[str, Any], i: int) -> list[str]:
    calls = message.get("tool_calls")
    if calls is None:
        return []
    if not isinstance(calls, list) or not calls:
        raise bad_request(
            f"Invalid 'messages[{i}].tool_calls': expected a non-empty array.",
            param=f"messages[{i}].tool_calls",
        )
    ids: list[str] = []
    for j, call in enumerate(calls):
        param = f"messages[{i}].tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(call, dict)
            or not isinstance(call.get("id"), str)
            or not call["id"]
            or call.get("type", "function") != "function"
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
            or not isinstance(function.get("arguments"), str)
        ):
            raise bad_request(
                f"Invalid '{param}': expected {{id, type: 'function', "
                "function: {name, arguments (a JSON string)}}.",
                param=param,
            )
        if call["id"] in ids:
            raise bad_request(f"Duplicate tool call id '{call['id']}' in '{param}'.", param=param)
        ids.append(call["id"])
    return ids


def _unanswered(pending: Sequence[str]) -> ApiError:
    return bad_request(
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        + ", ".join(pending),
        param="messages",
    )


def validate_messages(messages: Any) -> list[dict[str, Any]]:
    """Check roles, contents and the pairing of tool calls with tool messages."""
    if not isinstance(messages, list) or not messages:
        if messages is None:
            raise bad_request("Missing required parameter: 'messages'.", param="messages")
        raise bad_request(
            "Invalid 'messages': expected a non-empty array of messages.", param="messages"
        )
    pending: list[str] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad_request(f"Invalid 'messages[{i}]': expected an object.", param="messages")
        role = message.get("role")
        if role not in ROLES:
            raise bad_request(
                f"Invalid value for 'messages[{i}].role': {role!r}. Supported values are: "
                + ", ".join(repr(r) for r in ROLES)
                + ".",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or call_id not in pending:
                raise bad_request(
                    f"Invalid parameter: messages[{i}] with role 'tool' must be a response to "
                    f"a preceding message with 'tool_calls' (tool_call_id {call_id!r}).",
                    param=f"messages[{i}].tool_call_id",
                )
            pending.remove(call_id)
            _check_content(message, i, required=True)
            continue
        if pending:
            raise _unanswered(pending)
        if role == "assistant":
            pending = _check_assistant_calls(message, i)
            _check_content(message, i, required=not pending)
        else:
            _check_content(message, i, required=True)
    if pending:
        raise _unanswered(pending)
    return messages


def validate_tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list) or not tools:
        raise bad_request("Invalid 'tools': expected a non-empty array.", param="tools")
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        param = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise bad_request(f"Invalid '{param}': type must be 'function'.", param=param)
        if not isinstance(function, dict):
            raise bad_request(f"Missing required parameter: '{param}.function'.", param=param)
        name = function.get("name")
        if not isinstance(name, str) or not _TOOL_NAME_RE.match(name):
            raise bad_request(
                f"Invalid '{param}.function.name': must match ^[a-zA-Z0-9_-]{{1,64}}$.",
                param=f"{param}.function.name",
            )
        if "parameters" in function and not isinstance(function["parameters"], dict):
            raise bad_request(
                f"Invalid '{param}.function.parameters': expected an object.",
                param=f"{param}.function.parameters",
            )
    return tools


def validate_tool_choice(choice: Any, tools: list[dict[str, Any]]) -> str | dict[str, Any] | None:
    if choice is None:
        return None
    if not tools:
        raise bad_request(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
            "specified.",
            param="tool_choice",
        )
    if choice in ("none", "auto", "required"):
        return str(choice)
    function = choice.get("function") if isinstance(choice, dict) else None
    if (
        not isinstance(choice, dict)
        or choice.get("type") != "function"
        or not isinstance(function, dict)
        or not isinstance(function.get("name"), str)
    ):
        raise bad_request(
            "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or "
            "{'type': 'function', 'function': {'name': ...}}.",
            param="tool_choice",
        )
    names = [t["function"]["name"] for t in tools]
    if function["name"] not in names:
        raise bad_request(
            f"Invalid value for 'tool_choice': no function named '{function['name']}' was "
            "specified in the 'tools' parameter.",
            param="tool_choice",
        )
    return choice


def validate_chat_request(body: Any) -> ChatRequest:
    """Validate a chat-completions body like OpenAI does; :class:`ApiError` (400) if not."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("you must provide a model parameter", param="model")
    stream = validate_stream_options(body)  # stream=true: simulator/streaming.py
    if body.get("n") not in (None, 1):
        raise bad_request("The simulator supports only n=1.", param="n")
    parallel = body.get("parallel_tool_calls", True)
    if not isinstance(parallel, bool):
        raise bad_request(
            "Invalid type for 'parallel_tool_calls': expected a boolean.",
            param="parallel_tool_calls",
        )
    messages = validate_messages(body.get("messages"))
    tools = validate_tools(body.get("tools"))
    tool_choice = validate_tool_choice(body.get("tool_choice"), tools)
    validate_model_params(body, messages, tools)  # temperature, top_p, ... (params.py)
    return ChatRequest(model, messages, tools, tool_choice, parallel, stream)


def approx_tokens(text: str) -> int:
    """A deterministic token estimate: characters / 4, rounded up, at least 1."""
    return max(1, math.ceil(len(text) / 4))


def prompt_text(request: ChatRequest) -> str:
    """The text whose length estimates ``usage.prompt_tokens``."""
    parts: list[str] = []
    for message in request.messages:
        parts.append(str(message.get("role", "")))
        parts.append(content_text(message.get("content")))
        for call in message.get("tool_calls") or []:
            parts.append(str(call["function"]["name"]))
            parts.append(str(call["function"]["arguments"]))
    if request.tools:
        parts.append(json.dumps(request.tools, sort_keys=True, ensure_ascii=False))
    return "\n".join(parts)


def new_completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def completion_body(
    *,
    model: str,
    content: str | None,
    tool_calls: Sequence[OutToolCall],
    prompt: str,
    finish_reason: str | None = None,
) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in tool_calls
        ]
    completion = (content or "") + "".join(c.name + c.arguments for c in tool_calls)
    prompt_tokens = approx_tokens(prompt)
    completion_tokens = approx_tokens(completion)
    return {
        "id": new_completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def planned_to_out(calls: Sequence[tuple[str, Mapping[str, Any]]]) -> list[OutToolCall]:
    """Give planned ``(name, arguments object)`` calls fresh ids and JSON arguments."""
    return [
        OutToolCall(new_call_id(), name, json.dumps(dict(args), ensure_ascii=False))
        for name, args in calls
    ]
