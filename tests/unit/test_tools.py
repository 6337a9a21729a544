"""Tool definition: schema derivation, the decorator and the registry."""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

import pytest
from pydantic import BaseModel

import worker.tools.registry as registry_module
from worker.tools import (
    Tool,
    ToolRegistry,
    UnknownToolError,
    default_registry,
    parse_docstring,
    tool,
)


class Unit(Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


class Address(BaseModel):
    street: str
    title: str | None = None  # a field literally called "title" must survive cleaning


def params_of(func: Any, **options: Any) -> dict[str, Any]:
    return Tool.from_function(func, **options).parameters


def test_required_vs_defaults_and_closed_object() -> None:
    def f(a: str, b: int = 3, c: float | None = None) -> str:
        return a

    schema = params_of(f)
    assert schema["type"] == "object"
    assert schema["required"] == ["a"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["a"] == {"type": "string"}
    assert schema["properties"]["b"] == {"type": "integer", "default": 3}
    assert schema["properties"]["c"]["anyOf"] == [{"type": "number"}, {"type": "null"}]


def test_no_parameters_gives_empty_object() -> None:
    def ping() -> str:
        return "pong"

    assert params_of(ping) == {
        "type": "object",
        "properties": {},
        "required": [],
        "additionalProperties": False,
    }


def test_descriptions_from_google_docstring() -> None:
    def search(query: str, limit: int = 10) -> str:
        """Search the catalogue for products.

        Matches names and descriptions.

        Args:
            query (str): Words to look for,
                all of them must match.
            limit: Maximum number of hits.

        Returns:
            The hits, one a line.
        """
        return query

    made = Tool.from_function(search)
    assert made.description == "Search the catalogue for products."
    props = made.parameters["properties"]
    assert props["query"]["description"] == "Words to look for, all of them must match."
    assert props["limit"]["description"] == "Maximum number of hits."


def test_description_override_and_multi_line_first_paragraph() -> None:
    doc = parse_docstring("Line one\ncontinues here.\n\nSecond paragraph.")
    assert doc.description == "Line one continues here."
    assert doc.params == {}

    def f(x: int) -> int:
        """Ignored."""
        return x

    assert Tool.from_function(f, description="Custom").description == "Custom"


def test_no_title_noise_anywhere() -> None:
    def f(where: Address, mode: Literal["fast", "slow"] = "fast") -> str:
        return mode

    schema = params_of(f)
    text = repr(schema)
    assert "'title': '" not in text  # no pydantic titles, at any depth
    address = schema["$defs"]["Address"]
    assert set(address["properties"]) == {"street", "title"}  # the field is kept
    assert address["additionalProperties"] is False
    assert address["required"] == ["street"]
    assert schema["properties"]["where"] == {"$ref": "#/$defs/Address"}


def test_literal_enum_list_and_dict_params() -> None:
    def f(
        mode: Literal["a", "b"],
        unit: Unit,
        tags: list[str],
        counts: dict[str, int],
        flag: bool = False,
    ) -> str:
        return mode

    props = params_of(f)["properties"]
    assert props["mode"] == {"enum": ["a", "b"], "type": "string"}
    assert props["unit"] == {"$ref": "#/$defs/Unit"}
    assert params_of(f)["$defs"]["Unit"]["enum"] == ["celsius", "fahrenheit"]
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["counts"] == {"type": "object", "additionalProperties": {"type": "integer"}}
    assert props["flag"] == {"type": "boolean", "default": False}


def test_bind_validates_and_builds_python_values() -> None:
    seen: dict[str, Any] = {}

    def f(where: Address, unit: Unit, n: int = 1) -> str:
        seen.update(where=where, unit=unit, n=n)
        return "ok"

    made = Tool.from_function(f)
    kwargs = made.bind({"where": {"street": "Main"}, "unit": "celsius"})
    assert kwargs == {"where": Address(street="Main"), "unit": Unit.CELSIUS}  # n left out
    made.func(**kwargs)
    assert seen["n"] == 1


def test_parameter_names_that_clash_with_basemodel_attributes() -> None:
    def f(schema: str, model_config: int, json: bool = True) -> str:
        return schema

    made = Tool.from_function(f)
    assert set(made.parameters["properties"]) == {"schema", "model_config", "json"}
    assert made.bind({"schema": "s", "model_config": 2}) == {"schema": "s", "model_config": 2}


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("def f(*args: int) -> str: ...", "*args is not supported"),
        ("def f(**kwargs: int) -> str: ...", "**kwargs is not supported"),
        ("def f(x) -> str: ...", "parameter 'x' needs a type annotation"),
        ("def f(x: int, /) -> str: ...", "positional-only parameter 'x'"),
        ("def f(x: 'Missing') -> str: ...", "cannot resolve type annotations"),
    ],
)
def test_bad_signatures_rejected_at_decoration(source: str, fragment: str) -> None:
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    with pytest.raises(TypeError, match="tool 'f'") as info:
        tool(registry=ToolRegistry())(namespace["f"])
    assert fragment in str(info.value)


def test_invalid_tool_name_rejected() -> None:
    with pytest.raises(ValueError, match="invalid tool name 'has space'"):
        Tool.from_function(lambda: "x", name="has space")
    with pytest.raises(ValueError, match="invalid tool name '<lambda>'"):
        Tool.from_function(lambda: "x")


def test_both_decorator_forms_register_and_return_function_unchanged() -> None:
    registry = ToolRegistry()

    def plain(x: int) -> int:
        return x * 2

    def special(x: int) -> int:
        return x + 1

    assert tool(registry=registry)(plain) is plain
    decorated = tool(name="renamed", return_direct=True, idempotent=False, registry=registry)(
        special
    )
    assert decorated is special and decorated(1) == 2
    assert registry.names() == ["plain", "renamed"]
    renamed = registry.get("renamed")
    assert renamed is not None and renamed.func is special
    assert renamed.return_direct is True and renamed.idempotent is False
    assert registry.get("plain") == Tool.from_function(plain)  # defaults
    assert registry.get("special") is None


def test_bare_decorator_uses_default_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    # Swap in a fresh default so the process-wide registry is left untouched.
    fresh = ToolRegistry()
    monkeypatch.setattr(registry_module, "default_registry", fresh)

    @tool
    def bare(x: int) -> int:
        return x

    found = fresh.get("bare")
    assert found is not None and found.func is bare
    assert bare(4) == 4
    assert "bare" not in default_registry


def test_duplicate_name_with_other_function_raises_same_function_is_noop() -> None:
    registry = ToolRegistry()

    def first(x: int) -> int:
        return x

    def second(x: int) -> int:
        return -x

    tool(name="dup", registry=registry)(first)
    tool(name="dup", registry=registry)(first)  # e.g. module imported twice: fine
    with pytest.raises(ValueError, match="'dup' is already registered"):
        tool(name="dup", registry=registry)(second)
    found = registry.get("dup")
    assert found is not None and found.func is first


def test_reimported_module_function_counts_as_same() -> None:
    registry = ToolRegistry()
    source = "def twice(x: int) -> int:\n    return 2 * x\n"
    namespaces = []
    for _ in range(2):  # two executions of one module = two distinct function objects
        namespace: dict[str, Any] = {"__name__": "some_tools_module"}
        exec(source, namespace)
        namespaces.append(namespace)
    tool(registry=registry)(namespaces[0]["twice"])
    tool(registry=registry)(namespaces[1]["twice"])
    found = registry.get("twice")
    assert found is not None and found.func is namespaces[0]["twice"]


def test_registry_lookup_and_schemas() -> None:
    registry = ToolRegistry()

    @tool(registry=registry)
    def beta(x: int) -> int:
        """Beta tool."""
        return x

    @tool(registry=registry)
    def alpha(y: str) -> str:
        """Alpha tool."""
        return y

    assert registry.names() == ["alpha", "beta"]
    assert "alpha" in registry and "gamma" not in registry
    assert len(registry) == 2
    assert [t.name for t in registry] == ["alpha", "beta"]
    assert [s["function"]["name"] for s in registry.schemas()] == ["alpha", "beta"]
    assert [s["function"]["name"] for s in registry.schemas(["beta", "alpha", "beta"])] == [
        "beta",
        "alpha",
    ]
    assert registry.schemas(["alpha"]) == [
        {
            "type": "function",
            "function": {
                "name": "alpha",
                "description": "Alpha tool.",
                "parameters": {
                    "type": "object",
                    "properties": {"y": {"type": "string"}},
                    "required": ["y"],
                    "additionalProperties": False,
                },
            },
        }
    ]
    with pytest.raises(UnknownToolError, match="gamma, delta"):
        registry.schemas(["alpha", "gamma", "delta"])


def test_openai_schema_is_a_copy() -> None:
    registry = ToolRegistry()

    @tool(registry=registry)
    def f(x: int) -> int:
        return x

    found = registry.get("f")
    assert found is not None
    found.openai_schema()["function"]["parameters"]["properties"].clear()
    assert "x" in found.openai_schema()["function"]["parameters"]["properties"]


def test_builtins_are_registered_in_default_registry() -> None:
    for name in ("calculator", "get_weather", "get_time"):
        assert name in default_registry
    calc = default_registry.get("calculator")
    assert calc is not None
    assert calc.description == "Evaluate an arithmetic expression like '12 * (3 + 4)'."
    assert calc.parameters["required"] == ["expression"]
