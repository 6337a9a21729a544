"""Run one model-requested tool call and turn every outcome into a ToolOutput.

Nothing a tool or the model does makes ``execute_tool_call`` raise: errors are returned
as data (``is_error=True``) so the model can read them and try again. The texts follow
LlamaIndex's OpenAIAgent so prompts written for it keep working.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Collection, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from producer.contracts import ToolCall, ToolOutput, describe_validation_error
from worker.tools.registry import ToolRegistry

logger = logging.getLogger(__name__)

_JSON_KINDS: dict[type, str] = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def execute_tool_call(
    registry: ToolRegistry,
    call: ToolCall,
    allowed: Collection[str] | None = None,
    *,
    reraise: tuple[type[BaseException], ...] = (),
) -> ToolOutput:
    """Run ``call`` against ``registry`` and return its output.

    ``allowed`` limits which registered tools may run (None: all of them). Exceptions of
    the types in ``reraise`` (e.g. a task time limit) propagate instead of becoming
    error outputs, as do KeyboardInterrupt and SystemExit.
    """

    def output(content: str, is_error: bool = False) -> ToolOutput:
        return ToolOutput(
            tool_name=call.name,
            tool_call_id=call.id,
            arguments=call.arguments,
            content=content,
            is_error=is_error,
        )

    # Only a registry lookup can produce a callable: no imports, no getattr by name.
    tool = registry.get(call.name)
    if tool is None or (allowed is not None and call.name not in allowed):
        return output(f"Tool with name {call.name} not found", is_error=True)

    prefix = f"Error in calling tool {call.name}"
    try:
        arguments = json.loads(call.arguments) if call.arguments.strip() else {}
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        return output(f"{prefix}: the input json block is malformed: {exc}", is_error=True)
    if not isinstance(arguments, dict):
        kind = _JSON_KINDS.get(type(arguments), type(arguments).__name__)
        detail = f"expected a JSON object, got {kind}"
        return output(f"{prefix}: the input json block is malformed: {detail}", is_error=True)

    try:
        kwargs = tool.bind(arguments)
    except ValidationError as exc:
        return output(f"{prefix}: invalid arguments: {format_validation_error(exc)}", True)
    except reraise:
        raise
    except Exception as exc:  # a custom validator failing in an unexpected way
        return output(f"{prefix}: invalid arguments: {type(exc).__name__}: {exc}", True)

    try:
        result = tool.func(**kwargs)
        if inspect.iscoroutine(result):
            result = _run_coroutine(result)
        return output(to_content(result))
    except reraise:
        raise
    except Exception as exc:
        logger.warning("tool %s failed: %s: %s", call.name, type(exc).__name__, exc)
        return output(f"Error: {type(exc).__name__}: {exc}", is_error=True)


def format_validation_error(exc: ValidationError) -> str:
    """One compact ``loc: msg`` line per error, e.g. ``expression: Field required``."""
    return describe_validation_error(exc, separator="\n", root="arguments")


def to_content(value: Any) -> str:
    """A tool's return value as the text the model reads."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    try:
        if isinstance(value, BaseModel):
            data = value.model_dump(mode="json")
        else:
            # Handles dataclasses, enums, datetimes, sets, nested models and so on.
            data = to_jsonable_python(value, by_alias=False, inf_nan_mode="null")
        return json.dumps(data, ensure_ascii=False)
    except Exception:  # not JSON-representable (or circular): plain text instead
        return str(value)


def _run_coroutine(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from inside an event loop, where asyncio.run refuses: use a private thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
