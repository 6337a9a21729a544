"""Validation and conversion of a ``POST /v1/responses`` body's ``input``, ``tools`` and
``tool_choice`` into stored input items and chat-shaped messages for the model."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from simulator.common import invalid_type, new_id
from simulator.errors import bad_request

_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ROLES = ("user", "assistant", "system", "developer")
_MESSAGE_PARTS = ("input_text", "output_text", "input_image", "input_file", "refusal")


def _part_text(part: Any, where: str) -> str:
    if not isinstance(part, dict) or part.get("type") not in _MESSAGE_PARTS:
        raise bad_request(
            f"Invalid '{where}': expected a content part of type "
            + ", ".join(repr(p) for p in _MESSAGE_PARTS)
            + ".",
            param=where,
        )
    text = part.get("text", part.get("refusal", ""))
    return text if isinstance(text, str) else ""


def _message(item: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    role = item.get("role")
    if role not in _ROLES:
        raise bad_request(
            f"Invalid value for '{where}.role': {role!r}.",
            param=f"{where}.role",
            code="invalid_value",
        )
    content = item.get("content")
    if isinstance(content, str):
        kind = "output_text" if role == "assistant" else "input_text"
        parts: list[dict[str, Any]] = [{"type": kind, "text": content}]
        text = content
    elif isinstance(content, list):
        parts = content
        text = "".join(_part_text(p, f"{where}.content[{i}]") for i, p in enumerate(content))
    else:
        raise bad_request(f"Missing required parameter: '{where}.content'.", param=where)
    stored = {
        "type": "message",
        "id": item.get("id") or new_id("msg_"),
        "role": role,
        "content": parts,
        "status": "completed",
    }
    chat_role = "system" if role == "developer" else role
    return stored, {"role": chat_role, "content": text}


def _output_text(output: Any, where: str) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(_part_text(p, f"{where}.output[{i}]") for i, p in enumerate(output))
    raise invalid_type(f"{where}.output", "a string or an array of content parts")


def convert_input(raw: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``input`` -> (stored input items, chat-shaped messages)."""
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    if not isinstance(raw, list):
        raise bad_request("Missing required parameter: 'input'.", param="input")
    items: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise invalid_type(where, "an object")
        kind = item.get("type", "message")
        if kind == "message":
            stored, message = _message(item, where)
            items.append(stored)
            messages.append(message)
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise bad_request(
                    f"Missing required parameter: '{where}.call_id'.", param=f"{where}.call_id"
                )
            text = _output_text(item.get("output"), where)
            items.append(
                {
                    "type": kind,
                    "id": item.get("id") or new_id("fco_"),
                    "call_id": call_id,
                    "output": item.get("output"),
                    "status": "completed",
                }
            )
            messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
        elif kind == "function_call":
            call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments")
            if not all(isinstance(v, str) and v for v in (call_id, name)) or not isinstance(
                arguments, str
            ):
                raise bad_request(
                    f"Invalid '{where}': a function_call needs call_id, name and "
                    "arguments (strings).",
                    param=where,
                )
            items.append({**item, "id": item.get("id") or new_id("fc_"), "status": "completed"})
            call = {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls"):
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        else:  # reasoning, item_reference, built-in tool items: kept, unseen by the model
            items.append(dict(item))
    return items, messages


def check_tool_outputs(pending: Sequence[str], messages: Sequence[dict[str, Any]]) -> None:
    """Every call (``pending`` from the previous response, plus calls in this input) needs
    an output, and every output a call; else OpenAI's 400."""
    calls = list(pending)
    outputs: list[str] = []
    for message in messages:
        calls.extend(c["id"] for c in message.get("tool_calls") or ())
        if message["role"] == "tool":
            outputs.append(message["tool_call_id"])
    for call_id in outputs:
        if call_id not in calls:
            raise bad_request(
                f"No tool call found for function call output with call_id {call_id}.",
                param="input",
            )
    for call_id in calls:
        if call_id not in outputs:
            raise bad_request(f"No tool output found for function call {call_id}.", param="input")


def validate_tools(raw: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``tools`` -> (as given, chat-shaped function tools for the model)."""
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        raise invalid_type("tools", "an array")
    chat_tools: list[dict[str, Any]] = []
    for i, tool in enumerate(raw):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise bad_request(f"Missing required parameter: '{where}.type'.", param=where)
        if tool["type"] != "function":
            continue  # built-in tools are accepted and never called by the simulator
        name = tool.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise bad_request(
                f"Invalid '{where}.name': must match ^[a-zA-Z0-9_-]{{1,64}}$.",
                param=f"{where}.name",
            )
        parameters = tool.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise invalid_type(f"{where}.parameters", "an object")
        function = {"name": name, "parameters": parameters or {}}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        chat_tools.append({"type": "function", "function": function})
    return raw, chat_tools


def chat_tool_choice(raw: Any, chat_tools: Sequence[dict[str, Any]]) -> Any:
    """``tool_choice`` in chat shape for the demo policy (built-ins count as ``auto``)."""
    if raw is None or raw in ("none", "auto", "required"):
        return raw
    if isinstance(raw, dict) and isinstance(raw.get("type"), str):
        if raw["type"] != "function":
            return "auto"
        name = raw.get("name")
        names = [t["function"]["name"] for t in chat_tools]
        if not isinstance(name, str) or name not in names:
            raise bad_request(
                f"Tool choice '{name}' not found in 'tools' parameter.", param="tool_choice"
            )
        return {"type": "function", "function": {"name": name}}
    raise bad_request(
        "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or "
        "{'type': 'function', 'name': ...}.",
        param="tool_choice",
        code="invalid_value",
    )
