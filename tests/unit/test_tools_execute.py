"""execute_tool_call: every outcome is a ToolOutput with the exact texts the agent expects."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import date
from enum import Enum
from typing import Any

import pytest
from pydantic import BaseModel

from producer.contracts import ToolCall, ToolOutput
from worker.tools import ToolRegistry, execute_tool_call, tool


class Order(BaseModel):
    order_id: int
    placed: date


class Color(Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Opaque:
    def __str__(self) -> str:
        return "<opaque thing>"


@pytest.fixture
def registry() -> ToolRegistry:
    reg = ToolRegistry()

    @tool(registry=reg)
    def add(a: int, b: int = 1) -> int:
        return a + b

    @tool(registry=reg)
    def greet(name: str) -> str:
        return f"hello {name}"

    @tool(registry=reg)
    def explode(message: str) -> str:
        raise KeyError(message)

    @tool(registry=reg)
    def nothing() -> None:
        return None

    @tool(registry=reg)
    def as_dict() -> dict[str, Any]:
        return {"city": "Paris", "temps": [1, 2.5], "ok": True, "note": "é"}

    @tool(registry=reg)
    def as_model() -> Order:
        return Order(order_id=7, placed=date(2024, 5, 1))

    @tool(registry=reg)
    def as_misc() -> list[Any]:
        return [Point(1, 2), Color.RED, date(2024, 1, 2)]

    @tool(registry=reg)
    def as_opaque() -> Opaque:
        return Opaque()

    @tool(registry=reg)
    async def slow_double(n: int) -> int:
        await asyncio.sleep(0)
        return n * 2

    @tool(registry=reg)
    def nested(order: Order, tags: list[str]) -> str:
        return f"{order.order_id}:{order.placed.isoformat()}:{','.join(tags)}"

    return reg


def run(
    registry: ToolRegistry, name: str, arguments: str, allowed: list[str] | None = None
) -> ToolOutput:
    return execute_tool_call(
        registry, ToolCall(id="call_1", name=name, arguments=arguments), allowed
    )


def test_success_carries_call_identity(registry: ToolRegistry) -> None:
    out = run(registry, "add", '{"a": 2, "b": 3}')
    assert out == ToolOutput(
        tool_name="add", tool_call_id="call_1", arguments='{"a": 2, "b": 3}', content="5"
    )


def test_defaults_apply_and_lax_coercion(registry: ToolRegistry) -> None:
    assert run(registry, "add", '{"a": "40"}').content == "41"


def test_unknown_tool(registry: ToolRegistry) -> None:
    out = run(registry, "missing", "{}")
    assert out.is_error and out.content == "Tool with name missing not found"


@pytest.mark.parametrize("name", ["__import__", "execute_tool_call", "add.__globals__", "os"])
def test_only_registered_functions_can_be_reached(registry: ToolRegistry, name: str) -> None:
    out = run(registry, name, "{}")
    assert out.is_error and out.content == f"Tool with name {name} not found"


def test_allowed_list_is_enforced(registry: ToolRegistry) -> None:
    blocked = run(registry, "add", '{"a": 1}', allowed=["greet"])
    assert blocked.is_error and blocked.content == "Tool with name add not found"
    none_allowed = run(registry, "greet", '{"name": "x"}', allowed=[])
    assert none_allowed.content == "Tool with name greet not found"
    assert run(registry, "greet", '{"name": "x"}', allowed=["greet"]).content == "hello x"
    assert run(registry, "greet", '{"name": "x"}', allowed=None).content == "hello x"


def test_malformed_json(registry: ToolRegistry) -> None:
    out = run(registry, "add", '{"a": 1')
    assert out.is_error
    assert out.content == (
        "Error in calling tool add: the input json block is malformed: "
        "Expecting ',' delimiter: line 1 column 8 (char 7)"
    )


@pytest.mark.parametrize(
    ("arguments", "kind"),
    [("[1, 2]", "an array"), ('"a"', "a string"), ("3", "a number"), ("null", "null")],
)
def test_json_that_is_not_an_object(registry: ToolRegistry, arguments: str, kind: str) -> None:
    out = run(registry, "add", arguments)
    assert out.is_error
    assert out.content == (
        "Error in calling tool add: the input json block is malformed: "
        f"expected a JSON object, got {kind}"
    )


@pytest.mark.parametrize("arguments", ["", "   "])
def test_empty_arguments_mean_empty_object(registry: ToolRegistry, arguments: str) -> None:
    out = run(registry, "nothing", arguments)
    assert not out.is_error and out.content == ""
    missing = run(registry, "greet", arguments)
    assert missing.content == "Error in calling tool greet: invalid arguments: name: Field required"


def test_validation_errors_name_fields_one_line_each(registry: ToolRegistry) -> None:
    out = run(registry, "add", '{"a": "x", "c": 1}')
    assert out.is_error
    assert out.content == (
        "Error in calling tool add: invalid arguments: "
        "a: Input should be a valid integer, unable to parse string as an integer\n"
        "c: Extra inputs are not permitted"
    )


def test_nested_model_arguments(registry: ToolRegistry) -> None:
    good = run(registry, "nested", '{"order": {"order_id": 3, "placed": "2024-02-03"}, "tags": []}')
    assert good.content == "3:2024-02-03:"
    bad = run(registry, "nested", '{"order": {"placed": "2024-02-03"}, "tags": [1]}')
    assert bad.content == (
        "Error in calling tool nested: invalid arguments: order.order_id: Field required\n"
        "tags.0: Input should be a valid string"
    )


def test_function_exception_becomes_error_output(registry: ToolRegistry) -> None:
    out = run(registry, "explode", '{"message": "boom"}')
    assert out.is_error and out.content == "Error: KeyError: 'boom'"


def test_reraise_lets_chosen_exceptions_through() -> None:
    class Deadline(Exception):
        pass

    reg = ToolRegistry()

    @tool(registry=reg)
    def stuck() -> str:
        raise Deadline("time is up")

    call = ToolCall(id="c", name="stuck", arguments="{}")
    assert execute_tool_call(reg, call, None).content == "Error: Deadline: time is up"
    with pytest.raises(Deadline):
        execute_tool_call(reg, call, None, reraise=(Deadline,))


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("greet", "hello x"),
        ("nothing", ""),
        ("as_dict", '{"city": "Paris", "temps": [1, 2.5], "ok": true, "note": "é"}'),
        ("as_model", '{"order_id": 7, "placed": "2024-05-01"}'),
        ("as_misc", '[{"x": 1, "y": 2}, "red", "2024-01-02"]'),
        ("as_opaque", "<opaque thing>"),
        ("add", "2"),
    ],
)
def test_success_conversion(registry: ToolRegistry, name: str, content: str) -> None:
    args = {"greet": '{"name": "x"}', "add": '{"a": 1}'}.get(name, "{}")
    out = run(registry, name, args)
    assert not out.is_error
    assert out.content == content


def test_async_tool_runs(registry: ToolRegistry) -> None:
    out = run(registry, "slow_double", '{"n": 21}')
    assert not out.is_error and out.content == "42"


def test_async_tool_runs_even_inside_a_running_loop(registry: ToolRegistry) -> None:
    async def inside() -> ToolOutput:
        return run(registry, "slow_double", '{"n": 5}')

    out = asyncio.run(inside())
    assert not out.is_error and out.content == "10"


def test_builtin_error_texts_through_execution() -> None:
    from worker.tools import default_registry

    weather = execute_tool_call(
        default_registry, ToolCall(id="w", name="get_weather", arguments='{"city": "Atlantis"}')
    )
    assert weather.is_error
    assert weather.content == "Error: ValueError: no weather station for 'Atlantis'"
    calc = execute_tool_call(
        default_registry, ToolCall(id="c", name="calculator", arguments='{"expression": "1/0"}')
    )
    assert calc.content == "Error: ValueError: division by zero"
    ok = execute_tool_call(
        default_registry,
        ToolCall(id="c", name="calculator", arguments='{"expression": "12 * (3 + 4)"}'),
    )
    assert not ok.is_error and ok.content == "84"
