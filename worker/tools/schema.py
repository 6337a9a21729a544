"""Turn a typed Python function into a pydantic arguments model and a JSON schema.

The model validates the JSON arguments the LLM sends; the schema (derived from the same
model, so the two cannot disagree) is what the LLM is shown.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

# Section headers of a Google-style docstring; the description stops at any of them.
_SECTION_RE = re.compile(
    r"^(Args|Arguments|Parameters|Params|Returns?|Yields?|Raises|Examples?|Notes?|"
    r"Warnings?|See Also|Attributes|Todo):\s*$"
)
_ARGS_HEADERS = frozenset({"Args", "Arguments", "Parameters", "Params"})
# "name (type): text" or "name: text"
_ARG_LINE_RE = re.compile(r"^\*{0,2}(?P<name>\w+)\s*(?:\([^)]*\))?\s*:\s*(?P<text>.*)$")

# Schema keywords whose values are data, not sub-schemas: never rewrite inside them.
_DATA_KEYWORDS = frozenset({"default", "examples", "const", "enum"})
# Keywords whose values map names to sub-schemas (so a property called "title" survives).
_MAPPING_KEYWORDS = frozenset({"properties", "$defs", "definitions", "patternProperties"})


@dataclass(frozen=True)
class Docstring:
    """The parts of a docstring a tool uses."""

    description: str
    params: dict[str, str]


def parse_docstring(doc: str | None) -> Docstring:
    """First paragraph as the description, plus parameter texts from an ``Args:`` section."""
    if not doc:
        return Docstring("", {})
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION_RE.match(line.strip()):
            break
        summary.append(line.strip())
    return Docstring(" ".join(summary), _parse_args_section(lines))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _parse_args_section(lines: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    header_indent: int | None = None
    entry_indent: int | None = None
    current: str | None = None
    for line in lines:
        stripped = line.strip()
        if header_indent is None:
            if stripped.rstrip(":") in _ARGS_HEADERS and stripped.endswith(":"):
                header_indent = _indent(line)
            continue
        if not stripped:
            continue
        if _indent(line) <= header_indent:
            break  # the next section (or text) starts: the Args section is over
        if entry_indent is None:
            entry_indent = _indent(line)
        match = _ARG_LINE_RE.match(stripped)
        if _indent(line) == entry_indent and match:
            current = match.group("name")
            params[current] = match.group("text").strip()
        elif current is not None:  # continuation line of the previous entry
            params[current] = f"{params[current]} {stripped}".strip()
    return params


@dataclass(frozen=True)
class ArgumentsSpec:
    """What ``build_arguments`` derives from a function."""

    model: type[BaseModel]
    # (parameter name, model field name) pairs; fields are named p0, p1, ... with the
    # parameter name as alias, so parameters may be called e.g. "schema" or "model_x"
    # without clashing with BaseModel attributes.
    fields: tuple[tuple[str, str], ...]
    parameters: dict[str, Any]
    description: str


def build_arguments(func: Callable[..., Any], tool_name: str) -> ArgumentsSpec:
    """Derive the arguments model and JSON schema of ``func``.

    Raises TypeError for signatures a JSON object cannot call: ``*args``, ``**kwargs``,
    positional-only or unannotated parameters, or annotations that cannot be resolved.
    """
    where = f"tool {tool_name!r} ({getattr(func, '__qualname__', func)!r})"
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{where}: cannot read the signature: {exc}") from exc
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as exc:  # NameError for unresolvable forward references, and others
        raise TypeError(f"{where}: cannot resolve type annotations: {exc}") from exc

    doc = parse_docstring(inspect.getdoc(func))
    definitions: dict[str, Any] = {}
    fields: list[tuple[str, str]] = []
    for index, (name, param) in enumerate(signature.parameters.items()):
        if param.kind is param.VAR_POSITIONAL:
            raise TypeError(f"{where}: *{name} is not supported; declare each parameter")
        if param.kind is param.VAR_KEYWORD:
            raise TypeError(f"{where}: **{name} is not supported; declare each parameter")
        if param.kind is param.POSITIONAL_ONLY:
            raise TypeError(f"{where}: positional-only parameter {name!r} is not supported")
        if name not in hints:
            raise TypeError(f"{where}: parameter {name!r} needs a type annotation")
        field_name = f"p{index}"
        default = ... if param.default is param.empty else param.default
        field_info = Field(default, alias=name, description=doc.params.get(name))
        definitions[field_name] = (hints[name], field_info)
        fields.append((name, field_name))

    try:
        model = create_model(
            f"{tool_name}_arguments",
            __config__=ConfigDict(extra="forbid"),
            **definitions,
        )
        raw_schema = model.model_json_schema()
    except Exception as exc:  # pydantic reports unsupported types in several ways
        raise TypeError(f"{where}: unsupported parameter type: {exc}") from exc
    return ArgumentsSpec(model, tuple(fields), clean_schema(raw_schema), doc.description)


def clean_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Make pydantic's schema what OpenAI expects: no titles, closed objects."""
    body = _clean(dict(schema))
    result: dict[str, Any] = {
        "type": "object",
        "properties": body.get("properties", {}),
        "required": body.get("required", []),
        "additionalProperties": False,
    }
    if "$defs" in body:
        result["$defs"] = body["$defs"]
    return result


def _clean(node: Any) -> Any:
    if isinstance(node, list):
        return [_clean(item) for item in node]
    if not isinstance(node, dict):
        return node
    cleaned: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title":
            continue  # pydantic's auto-generated titles only add tokens
        if key in _DATA_KEYWORDS:
            cleaned[key] = value
        elif key in _MAPPING_KEYWORDS and isinstance(value, dict):
            cleaned[key] = {name: _clean(sub) for name, sub in value.items()}
        else:
            cleaned[key] = _clean(value)
    if cleaned.get("type") == "object" and "properties" in cleaned:
        cleaned.setdefault("additionalProperties", False)
    return cleaned
