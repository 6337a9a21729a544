"""Validation of the chat-completions sampling and output parameters, as OpenAI does it.

Accepted values are left in the body, which the simulator records (``/_sim/requests``),
so tests see exactly what a worker sent. Error messages, ``param`` and ``code`` follow
OpenAI's answers to the same mistakes.
"""

from __future__ import annotations

import json
from typing import Any

from simulator.errors import bad_request

_RANGES = {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0)}
_TOKEN_PARAMS = ("max_tokens", "max_completion_tokens")
_SEED_RANGE = (-(2**63), 2**63 - 1)
MAX_STOP = 4
MAX_METADATA_PAIRS = 16


def _number(body: dict[str, Any], name: str) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"Invalid type for '{name}': expected a decimal, but got "
                          f"{type(value).__name__} instead.", param=name, code="invalid_type")
    low, high = _RANGES[name]
    if value < low:
        raise bad_request(f"Invalid '{name}': decimal below minimum value. Expected a value "
                          f">= {low:g}, but got {value} instead.", param=name,
                          code="decimal_below_min_value")
    if value > high:
        raise bad_request(f"Invalid '{name}': decimal above maximum value. Expected a value "
                          f"<= {high:g}, but got {value} instead.", param=name,
                          code="decimal_above_max_value")


def _integer(body: dict[str, Any], name: str, low: int, high: int | None = None) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"Invalid type for '{name}': expected an integer, but got "
                          f"{type(value).__name__} instead.", param=name, code="invalid_type")
    if value < low:
        raise bad_request(f"Invalid '{name}': integer below minimum value. Expected a value "
                          f">= {low}, but got {value} instead.", param=name,
                          code="integer_below_min_value")
    if high is not None and value > high:
        raise bad_request(f"Invalid '{name}': integer above maximum value. Expected a value "
                          f"<= {high}, but got {value} instead.", param=name,
                          code="integer_above_max_value")


def _stop(value: Any) -> None:
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise bad_request("Invalid type for 'stop': expected a string or an array of strings.",
                          param="stop", code="invalid_type")
    if len(value) > MAX_STOP:
        raise bad_request(f"Invalid 'stop': array too long. Expected an array with maximum "
                          f"length {MAX_STOP}, but got an array with length {len(value)} "
                          "instead.", param="stop", code="array_above_max_length")


def _mentions_json(messages: list[dict[str, Any]]) -> bool:
    return any("json" in json.dumps(m.get("content"), ensure_ascii=False).lower()
               for m in messages)


def _response_format(value: Any, messages: list[dict[str, Any]]) -> None:
    if value is None:
        return
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise bad_request(f"Invalid value: {kind!r}. Supported values are: 'text', "
                          "'json_object' and 'json_schema'.", param="response_format.type",
                          code="invalid_value")
    if kind == "json_object" and not _mentions_json(messages):
        raise bad_request("'messages' must contain the word 'json' in some form, to use "
                          "'response_format' of type 'json_object'.", param="messages")
    if kind != "json_schema":
        return
    spec = value.get("json_schema")
    if not isinstance(spec, dict):
        raise bad_request("Missing required parameter: 'response_format.json_schema'.",
                          param="response_format.json_schema", code="missing_required_parameter")
    if not isinstance(spec.get("name"), str):
        raise bad_request("Missing required parameter: 'response_format.json_schema.name'.",
                          param="response_format.json_schema.name",
                          code="missing_required_parameter")
    if "schema" in spec and not isinstance(spec["schema"], dict):
        raise bad_request("Invalid type for 'response_format.json_schema.schema': expected "
                          "an object.", param="response_format.json_schema.schema",
                          code="invalid_type")


def validate_model_params(
    body: dict[str, Any], messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> None:
    """Raise :class:`ApiError` (400) for a parameter OpenAI would refuse."""
    for name in _RANGES:
        _number(body, name)
    if all(body.get(name) is not None for name in _TOKEN_PARAMS):
        raise bad_request("max_tokens and max_completion_tokens cannot both be set; use "
                          "max_completion_tokens.", param="max_tokens")
    for name in _TOKEN_PARAMS:
        _integer(body, name, 1)
    _integer(body, "seed", *_SEED_RANGE)
    _stop(body.get("stop"))
    _response_format(body.get("response_format"), messages)
    if body.get("parallel_tool_calls") is not None and not tools:
        raise bad_request("Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is "
                          "only allowed when 'tools' are specified.",
                          param="parallel_tool_calls")
    metadata = body.get("metadata")
    if metadata is not None:
        if not body.get("store"):
            raise bad_request("The 'metadata' parameter is only allowed when 'store' is "
                              "enabled.", param="metadata")
        if not isinstance(metadata, dict) or len(metadata) > MAX_METADATA_PAIRS:
            raise bad_request(f"Invalid 'metadata': expected an object with at most "
                              f"{MAX_METADATA_PAIRS} pairs.", param="metadata")
