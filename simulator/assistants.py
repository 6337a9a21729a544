"""``/v1/assistants``: create, retrieve, modify, delete, list; tool list validation."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from simulator.beta_store import BetaStore
from simulator.common import (
    body_object,
    check_metadata,
    invalid_type,
    optional_str,
    page,
    required_str,
)
from simulator.errors import bad_request
from simulator.routing import Request, Response, Router, json_response

if TYPE_CHECKING:
    from simulator.state import SimState

BUILTIN_TOOLS = ("code_interpreter", "file_search")
MAX_TOOLS = 128
_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_PASSTHROUGH = ("temperature", "top_p", "response_format", "tool_resources", "reasoning_effort")


def validate_tools(value: Any, param: str = "tools") -> list[dict[str, Any]]:
    """Assistants tools: ``function`` (chat shape), ``code_interpreter``, ``file_search``."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_type(param, "an array")
    if len(value) > MAX_TOOLS:
        raise bad_request(f"Invalid '{param}': at most {MAX_TOOLS} tools.", param=param)
    for i, tool in enumerate(value):
        where = f"{param}[{i}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind in BUILTIN_TOOLS:
            continue
        if kind != "function":
            raise bad_request(
                f"Invalid value for '{where}.type': expected one of 'code_interpreter', "
                "'file_search' or 'function'.",
                param=f"{where}.type",
                code="invalid_value",
            )
        function = tool.get("function")
        if not isinstance(function, dict):
            raise bad_request(f"Missing required parameter: '{where}.function'.", param=where)
        name = function.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise bad_request(
                f"Invalid '{where}.function.name': must match ^[a-zA-Z0-9_-]{{1,64}}$.",
                param=f"{where}.function.name",
            )
        if "parameters" in function and not isinstance(function["parameters"], dict):
            raise invalid_type(f"{where}.function.parameters", "an object")
    return value


def function_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chat-shaped function tools among Assistants ``tools``."""
    return [t for t in tools if t.get("type") == "function"]


def validate_tool_choice(value: Any) -> Any:
    """``none``/``auto``/``required``, ``{"type": "function", "function": {"name"}}`` or a
    built-in ``{"type": "file_search"}``; ``None`` when absent."""
    if value is None or value in ("none", "auto", "required"):
        return value
    if isinstance(value, dict):
        kind = value.get("type")
        if kind in BUILTIN_TOOLS:
            return value
        function = value.get("function")
        if (
            kind == "function"
            and isinstance(function, dict)
            and isinstance(function.get("name"), str)
        ):
            return value
    raise bad_request(
        "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or "
        "{'type': 'function', 'function': {'name': ...}}.",
        param="tool_choice",
        code="invalid_value",
    )


def _fields(body: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = dict(
        base
        or {
            "name": None,
            "description": None,
            "instructions": None,
            "tools": [],
            "metadata": {},
            "tool_resources": None,
            "temperature": 1.0,
            "top_p": 1.0,
            "response_format": "auto",
        }
    )
    for key in ("name", "description", "instructions"):
        if key in body:
            fields[key] = optional_str(body, key)
    if fields["name"] is not None and len(fields["name"]) > 256:
        raise bad_request("Invalid 'name': string too long (max 256).", param="name")
    if "tools" in body:
        fields["tools"] = validate_tools(body["tools"])
    if "metadata" in body:
        fields["metadata"] = check_metadata(body["metadata"])
    for key in _PASSTHROUGH:
        if key in body:
            fields[key] = body[key]
    return fields


def add_routes(router: Router, state: SimState, store: BetaStore) -> None:
    def create(request: Request) -> Response:
        body = body_object(request)
        model = required_str(body, "model")
        assistant = store.add_assistant(model, _fields(body))
        state.stats.incr("assistant_created")
        return json_response(assistant.body())

    def retrieve(request: Request) -> Response:
        state.stats.incr("assistant_retrieved")
        return json_response(store.assistant(request.params["assistant_id"]).body())

    def modify(request: Request) -> Response:
        body = body_object(request)
        with store.lock:
            assistant = store.assistant(request.params["assistant_id"])
            if "model" in body:
                assistant.model = required_str(body, "model")
            assistant.fields = _fields(body, assistant.fields)
            return json_response(assistant.body())

    def delete(request: Request) -> Response:
        assistant_id = request.params["assistant_id"]
        with store.lock:
            store.assistant(assistant_id)
            del store.assistants[assistant_id]
        state.stats.incr("assistant_deleted")
        return json_response({"id": assistant_id, "object": "assistant.deleted", "deleted": True})

    def list_assistants(request: Request) -> Response:
        with store.lock:
            items = list(store.assistants.values())
        state.stats.incr("assistant_listed")
        return json_response(page(items, request, lambda a: a.id, lambda a: a.body()))

    router.add("POST", "/v1/assistants", create)
    router.add("GET", "/v1/assistants", list_assistants)
    router.add("GET", "/v1/assistants/{assistant_id}", retrieve)
    router.add("POST", "/v1/assistants/{assistant_id}", modify)
    router.add("DELETE", "/v1/assistants/{assistant_id}", delete)
