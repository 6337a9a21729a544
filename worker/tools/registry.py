"""Tools, the registry that holds them, and the ``@tool`` decorator."""

from __future__ import annotations

import copy
import inspect
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from pydantic import BaseModel

from producer.contracts import (
    DEFAULT_TOOL_QUEUE,
    TOOL_NAME_PATTERN,
    TOOL_QUEUE_PATTERN,
    function_tool,
)
from worker.tools.schema import build_arguments

F = TypeVar("F", bound=Callable[..., Any])

_TOOL_NAME_RE = re.compile(TOOL_NAME_PATTERN)
_QUEUE_RE = re.compile(TOOL_QUEUE_PATTERN)
# The queue of tools declared without one while a module is imported (set by the loader
# for ``AGENT_TOOL_MODULES="module=queue"``).
_module_queue: list[str] = []


def module_queue() -> str:
    return _module_queue[-1] if _module_queue else DEFAULT_TOOL_QUEUE


@contextmanager
def queue_for_module(queue: str | None) -> Iterator[None]:
    """Tools registered inside this block without a queue of their own get ``queue``."""
    if queue is None:
        yield
        return
    if not _QUEUE_RE.match(queue):
        raise ValueError(f"invalid queue name {queue!r}")
    _module_queue.append(queue)
    try:
        yield
    finally:
        _module_queue.pop()


class UnknownToolError(LookupError):
    """A tool name asked of a registry that does not hold it."""


@dataclass(frozen=True)
class Tool:
    """A function the model may call: name + JSON arguments in, string out."""

    name: str
    description: str
    parameters: dict[str, Any] = field(hash=False)
    func: Callable[..., Any] = field(repr=False)
    args_model: type[BaseModel] = field(repr=False, compare=False)
    # (parameter name, model field name) pairs, see schema.ArgumentsSpec.
    arg_fields: tuple[tuple[str, str], ...] = field(repr=False)
    return_direct: bool = False
    # False for tools with side effects that must not be repeated when a job is redelivered.
    idempotent: bool = True
    # True: every call waits for a person's decision before it runs (worker/approval.py).
    requires_approval: bool = False
    # The queue whose workers run the tool's calls (producer.contracts.DEFAULT_TOOL_QUEUE).
    queue: str = DEFAULT_TOOL_QUEUE

    @classmethod
    def from_function(
        cls,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        return_direct: bool = False,
        idempotent: bool = True,
        queue: str | None = None,
        requires_approval: bool = False,
    ) -> Tool:
        """Build a Tool from a typed function; raises TypeError/ValueError if it cannot be one."""
        if not callable(func):
            raise TypeError(f"a tool must be a function, got {func!r}")
        tool_name = name if name is not None else getattr(func, "__name__", "")
        if not _TOOL_NAME_RE.match(tool_name):
            raise ValueError(
                f"invalid tool name {tool_name!r}: must match {TOOL_NAME_PATTERN} "
                "(pass name=... to the decorator)"
            )
        queue = queue or module_queue()
        if not _QUEUE_RE.match(queue):
            raise ValueError(f"tool {tool_name!r}: invalid queue name {queue!r}")
        spec = build_arguments(func, tool_name)
        return cls(
            name=tool_name,
            description=description if description is not None else spec.description,
            parameters=spec.parameters,
            func=func,
            args_model=spec.model,
            arg_fields=spec.fields,
            return_direct=return_direct,
            idempotent=idempotent,
            queue=queue,
            requires_approval=requires_approval,
        )

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.func)

    def openai_schema(self) -> dict[str, Any]:
        """The entry for the ``tools`` list of a chat completions request."""
        # A copy, so a caller editing the request cannot change the tool.
        return function_tool(self.name, self.description, copy.deepcopy(self.parameters))

    def bind(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Validate decoded JSON arguments into keyword arguments for ``func``.

        Raises pydantic.ValidationError. Parameters the model left out are not passed,
        so the function's own defaults apply.
        """
        model = self.args_model.model_validate(arguments)
        given = model.model_fields_set
        return {param: getattr(model, fname) for param, fname in self.arg_fields if fname in given}


def _same_function(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    """True for one function, also when its module was imported (or reloaded) twice."""
    if a is b:
        return True
    qualname = getattr(a, "__qualname__", None)
    if qualname is None or "<locals>" in qualname or "<lambda>" in qualname:
        return False  # nested functions share a qualname without being the same code
    return bool(
        qualname == getattr(b, "__qualname__", None)
        and getattr(a, "__module__", None) == getattr(b, "__module__", None)
    )


class ToolRegistry:
    """Tools by name. Execution only ever looks tools up here, never by import path."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}
        self._lock = threading.Lock()

    def register(self, tool: Tool) -> Tool:
        """Add ``tool``; returns the registered Tool.

        Registering the same function again under its name is a no-op (the first stays);
        a different function under a taken name raises ValueError.
        """
        with self._lock:
            existing = self._tools.get(tool.name)
            if existing is None:
                self._tools[tool.name] = tool
                return tool
            if _same_function(existing.func, tool.func):
                return existing
            raise ValueError(
                f"tool name {tool.name!r} is already registered for "
                f"{existing.func.__module__}.{existing.func.__qualname__}"
            )

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return sorted(self._tools)

    def for_request(self, allowed: list[str] | None, forced: str | None) -> list[str]:
        """The tools a request may use (``None``: all), checked to exist.

        Raises UnknownToolError listing the unknown names and the known ones.
        """
        known = self.names()
        names = list(allowed) if allowed is not None else known
        unknown = [name for name in names if name not in self._tools]
        if forced and forced not in names:
            unknown.append(forced)
        if unknown:
            raise UnknownToolError(
                f"unknown tools: {', '.join(unknown)}; known tools: {', '.join(known) or 'none'}"
            )
        return names

    def schemas(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """OpenAI tool schemas for ``names`` (in that order), or for all tools when None.

        Raises UnknownToolError naming every name that is not registered.
        """
        wanted = self.names() if names is None else list(dict.fromkeys(names))
        missing = [name for name in wanted if name not in self._tools]
        if missing:
            raise UnknownToolError(f"unknown tool(s): {', '.join(missing)}")
        return [self._tools[name].openai_schema() for name in wanted]

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter([self._tools[name] for name in self.names()])


default_registry = ToolRegistry()


@overload
def tool(func: F, /) -> F: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    return_direct: bool = False,
    idempotent: bool = True,
    queue: str | None = None,
    requires_approval: bool = False,
    registry: ToolRegistry | None = None,
) -> Callable[[F], F]: ...


def tool(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    return_direct: bool = False,
    idempotent: bool = True,
    queue: str | None = None,
    requires_approval: bool = False,
    registry: ToolRegistry | None = None,
) -> Any:
    """Register a function as a tool; usable as ``@tool`` or ``@tool(...)``.

    The function is returned unchanged, so Python code can still call it directly.
    ``queue``: only workers consuming that queue serve the tool (default: the module's
    queue from ``AGENT_TOOL_MODULES="module=queue"``, else ``tools``).
    ``requires_approval``: each call waits for a person's decision before it runs.
    """
    target = default_registry if registry is None else registry

    def decorate(f: F) -> F:
        target.register(
            Tool.from_function(
                f,
                name=name,
                description=description,
                return_direct=return_direct,
                idempotent=idempotent,
                queue=queue,
                requires_approval=requires_approval,
            )
        )
        return f

    if func is None:
        return decorate
    if isinstance(func, str):
        raise TypeError("give the tool name as a keyword: @tool(name=...)")
    return decorate(func)
