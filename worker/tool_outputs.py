"""Error outputs the workers write for tool calls that did not run normally.

Each is data the model sees (``is_error=True``), never an exception: a call refused by
the budget, one stopped by its time limit, one whose outcome was lost with its worker.
"""

from __future__ import annotations

from producer.contracts import ToolCall, ToolOutput


def error_output(call: ToolCall, content: str) -> ToolOutput:
    return ToolOutput(
        tool_name=call.name, tool_call_id=call.id, arguments=call.arguments,
        content=content, is_error=True,
    )


def budget_refusal(call: ToolCall, budget: int, scope: str) -> ToolOutput:
    """A call beyond ``max_function_calls``; ``scope`` is "turn" or "run"."""
    return error_output(
        call,
        f"Error: the {scope}'s budget of {budget} function calls is spent; "
        f"{call.name} was not run. Answer with what you have.",
    )
