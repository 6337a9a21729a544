"""The one small interface both protocol adapters implement, and the choice between them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from producer.contracts import ToolOutput
from worker.assistant.logic import RunSnapshot
from worker.assistant.state import RunState

Schemas = Callable[[], Sequence[dict[str, Any]]]
"""The request's function-tool schemas (chat-completions shape), built when first needed."""

Save = Callable[[RunState], RunState]
"""Persist an intermediate state (a server-side id just created) and return it."""


class RunAdapter(Protocol):
    def create(self, state: RunState, save: Save) -> RunState:
        """Create what the run needs and start it. Ids are saved with ``save`` as they
        appear, so a redelivered start resumes instead of creating them again. Returns
        the state with the run (or response) id, not yet saved."""

    def retrieve(self, state: RunState) -> RunSnapshot:
        """One status read of the run or response."""

    def submit(self, state: RunState, outputs: Sequence[ToolOutput]) -> str | None:
        """Send all outputs of the pending round in call order; returns the follow-up
        response id (Responses API) or None (Assistants API)."""

    def cancel(self, state: RunState) -> None:
        """Cancel the run or response server-side (it may have ended already)."""


def function_tools(schemas: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat-completions tool schemas ({"type": "function", "function": {...}}) as the
    Assistants API takes them (the same nested shape)."""
    return [dict(schema) for schema in schemas]


def flat_function_tools(schemas: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Responses API's flat function-tool shape: name, description, parameters."""
    flat = []
    for schema in schemas:
        function = schema["function"]
        tool: dict[str, Any] = {
            "type": "function",
            "name": function["name"],
            "parameters": function.get("parameters", {"type": "object", "properties": {}}),
            "strict": False,
        }
        if function.get("description"):
            tool["description"] = function["description"]
        flat.append(tool)
    return flat
