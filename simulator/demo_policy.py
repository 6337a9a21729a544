"""The deterministic demo "model": pure functions of (messages, tools, tool_choice).

Rules, first match wins:

* ``tool_choice`` "none" or no tools -> a text answer.
* forced function -> call it, arguments derived from the last user message and the
  tool's JSON schema.
* the messages after the last user message end with tool results -> a final text answer
  quoting them (errors acknowledged); with "required" a tool is called again instead.
* arithmetic + a ``calculator`` tool -> ``calculator({"expression": ...})``;
  "weather" + a ``get_weather`` tool -> one ``get_weather({"city": ...})`` per city, in
  order of mention, as parallel calls in one reply.
* "required" -> the best-matching tool (else the first).
* otherwise a text answer: name memory, a greeting, or ``You said: "..."``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from simulator.text_extract import (
    asks_for_name,
    content_text,
    find_arithmetic,
    find_cities,
    first_number,
    introduced_name,
    last_introduced_name,
    mentions_word,
    words,
)

Message = Mapping[str, Any]
Tool = Mapping[str, Any]

_MAX_QUOTED_RESULT = 500
_EXPRESSION_PARAMS = {"expression", "expr", "formula", "equation", "math"}
_PLACE_PARAMS = {"city", "location", "place", "town"}
_GREETING_RE = re.compile(r"^\s*(hello|hi|hey|good (morning|afternoon|evening))\b", re.IGNORECASE)


@dataclass(frozen=True)
class PlannedCall:
    """A tool call the policy wants to make; ``arguments`` still a JSON object."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Decision:
    """The policy's answer: text (``content``) or tool calls."""

    content: str | None
    tool_calls: tuple[PlannedCall, ...] = ()


def tool_name(tool: Tool) -> str:
    function = tool.get("function")
    return str(function.get("name", "")) if isinstance(function, Mapping) else ""


def _schema(tool: Tool) -> Mapping[str, Any]:
    function = tool.get("function")
    if isinstance(function, Mapping):
        params = function.get("parameters")
        if isinstance(params, Mapping):
            return params
    return {}


def _types(prop: Mapping[str, Any]) -> set[str]:
    declared = prop.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {t for t in declared if isinstance(t, str)}
    return {"string"} if "enum" not in prop else set()


def _string_value(name: str, prop: Mapping[str, Any], text: str) -> str:
    enum = prop.get("enum")
    if isinstance(enum, list) and enum:
        for option in enum:
            if isinstance(option, str) and mentions_word(text, option):
                return option
        return str(enum[0])
    key = name.lower()
    if key in _EXPRESSION_PARAMS:
        return find_arithmetic(text) or text
    if key in _PLACE_PARAMS:
        cities = find_cities(text)
        return cities[0] if cities else text
    return text


def derive_arguments(tool: Tool, text: str) -> dict[str, Any]:
    """Arguments for ``tool`` from ``text`` and the tool's JSON schema.

    Required string parameters get the relevant text (the arithmetic expression for
    ``expression``, a city for ``city``, a mentioned enum value, else the whole text);
    required integer/number parameters get the first number in the text; the rest are
    omitted.
    """
    schema = _schema(tool)
    props = schema.get("properties")
    required = schema.get("required")
    if not isinstance(props, Mapping) or not isinstance(required, list):
        return {}
    args: dict[str, Any] = {}
    for name in required:
        prop = props.get(name)
        if not isinstance(name, str) or not isinstance(prop, Mapping):
            continue
        kinds = _types(prop)
        if "string" in kinds or isinstance(prop.get("enum"), list):
            args[name] = _string_value(name, prop, text)
        elif kinds & {"integer", "number"}:
            number = first_number(text)
            if number is not None:
                use_int = "integer" in kinds or number.is_integer()
                args[name] = int(number) if use_int else number
    return args


def _find_tool(tools: Sequence[Tool], name: str) -> Tool | None:
    return next((t for t in tools if tool_name(t) == name), None)


def _heuristic_calls(text: str, tools: Sequence[Tool]) -> list[PlannedCall]:
    calls: list[PlannedCall] = []
    calculator = _find_tool(tools, "calculator")
    expression = find_arithmetic(text)
    if calculator is not None and expression:
        props = _schema(calculator).get("properties")
        if not isinstance(props, Mapping) or not props or "expression" in props:
            calls.append(PlannedCall("calculator", {"expression": expression}))
        else:
            calls.append(PlannedCall("calculator", derive_arguments(calculator, expression)))
    if _find_tool(tools, "get_weather") is not None and mentions_word(text, "weather"):
        calls.extend(PlannedCall("get_weather", {"city": city}) for city in find_cities(text))
    return calls


def _best_tool(text: str, tools: Sequence[Tool]) -> Tool:
    said = words(text)

    def score(tool: Tool) -> int:
        function = tool.get("function")
        description = function.get("description", "") if isinstance(function, Mapping) else ""
        name_words = words(tool_name(tool).replace("_", " "))
        desc_words = {w for w in words(str(description)) if len(w) >= 4}
        return 2 * len(name_words & said) + len(desc_words & said)

    best = max(range(len(tools)), key=lambda i: (score(tools[i]), -i))
    return tools[best]


def _user_texts(messages: Sequence[Message]) -> list[str]:
    return [content_text(m.get("content")) for m in messages if m.get("role") == "user"]


def _turn_tail(messages: Sequence[Message]) -> Sequence[Message]:
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    return messages[last_user + 1 :]


def _parse_args(raw: Any) -> dict[str, Any]:
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def summarize_results(tail: Sequence[Message]) -> str:
    """A final answer quoting the tool results in ``tail`` (errors acknowledged)."""
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    found: list[str] = []
    failed: list[str] = []
    for message in tail:
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            calls[str(call.get("id"))] = (
                str(function.get("name", "tool")),
                _parse_args(function.get("arguments")),
            )
        if message.get("role") != "tool":
            continue
        name, args = calls.get(str(message.get("tool_call_id")), ("tool", {}))
        subject = next((str(args[k]) for k in ("city", "location") if k in args), None)
        label = f"{name}({subject})" if subject else name
        result = content_text(message.get("content")).strip()
        if len(result) > _MAX_QUOTED_RESULT:
            result = result[:_MAX_QUOTED_RESULT] + "…"
        if result.lower().startswith("error"):
            if name.startswith("get_") and subject:
                what = name[len("get_") :].replace("_", " ")
                failed.append(f"I could not get the {what} for {subject}: {result}")
            else:
                failed.append(f"I could not run {label}: {result}")
        else:
            found.append(f"- {label}: {result}")
    parts = []
    if found:
        parts.append("Here is what I found:\n" + "\n".join(found))
    parts.extend(failed)
    return "\n".join(parts) if parts else "The tools returned no results."


def text_answer(messages: Sequence[Message]) -> str:
    """The answer without tools: name memory, else a quote of the last user message."""
    texts = _user_texts(messages)
    last = texts[-1].strip() if texts else ""
    if asks_for_name(last):
        name = last_introduced_name(texts[:-1])
        return f"Your name is {name}." if name else "I don't know your name yet."
    name = introduced_name(last)
    if name:
        return f"Nice to meet you, {name}."
    if not last:
        return "How can I help you?"
    if _GREETING_RE.match(last):
        return (
            "Hello! I am the simulator's demo model. I can do arithmetic with a calculator "
            "tool, look up the weather for several cities at once, and remember your name."
        )
    return f'You said: "{last}"'


def _forced_name(tool_choice: Any) -> str | None:
    if isinstance(tool_choice, Mapping):
        function = tool_choice.get("function")
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            return str(function["name"])
    return None


def decide(
    messages: Sequence[Message],
    tools: Sequence[Tool] | None,
    tool_choice: str | Mapping[str, Any] | None,
    *,
    parallel_tool_calls: bool = True,
) -> Decision:
    """What the demo model answers to this (already validated) request."""
    tools = list(tools or [])
    tail = _turn_tail(messages)
    has_results = bool(tail) and tail[-1].get("role") == "tool"
    if tool_choice == "none" or not tools:
        return Decision(summarize_results(tail) if has_results else text_answer(messages))
    texts = _user_texts(messages)
    text = texts[-1] if texts else ""
    forced = _forced_name(tool_choice)
    if forced is not None:
        tool = _find_tool(tools, forced) or tools[0]
        return Decision(None, (PlannedCall(tool_name(tool), derive_arguments(tool, text)),))
    required = tool_choice == "required"
    if has_results and not required:
        return Decision(summarize_results(tail))
    calls = _heuristic_calls(text, tools)
    if not calls and required:
        tool = _best_tool(text, tools)
        calls = [PlannedCall(tool_name(tool), derive_arguments(tool, text))]
    if calls:
        return Decision(None, tuple(calls if parallel_tool_calls else calls[:1]))
    if _find_tool(tools, "get_weather") is not None and mentions_word(text, "weather"):
        return Decision("Which city would you like the weather for?")
    return Decision(text_answer(messages))
