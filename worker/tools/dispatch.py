"""Run a tool call on a tools worker: a Python tool of this process or a tool of an MCP
server (``SERVER__TOOL``, worker/mcp/). A call this worker cannot run is an error output
that names the worker, never an internal error (issue 12, defect 4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from producer.contracts import ToolCall, ToolOutput
from worker.mcp import config as mcp_config
from worker.tool_outputs import error_output
from worker.tools.execute import execute_tool_call
from worker.tools.registry import ToolRegistry

if TYPE_CHECKING:
    from worker.context import WorkerContext


def serves(registry: ToolRegistry, name: str) -> bool:
    """Can this process run ``name``?"""
    return name in registry or _mcp_serves(name)


def _mcp_serves(name: str) -> bool:
    if not mcp_config.configured():  # no MCP servers: the SDK is never imported
        return False
    from worker.mcp import calls as mcp_calls

    return mcp_calls.serves(name)


def not_served(call: ToolCall, worker: str | None, allowed: list[str]) -> ToolOutput:
    """The output of a call no worker could run: ``worker`` None: no live worker serves
    the tool; else the worker the call reached, which lacks it. A name that is no tool
    of the turn at all (the model made it up) gets LlamaIndex's text."""
    if call.name not in allowed:
        return error_output(call, f"Tool with name {call.name} not found")
    if worker is None:
        return error_output(call, f"Error: tool {call.name} is not served by any worker "
                                  "right now")
    return error_output(call, f"Error: tool {call.name} is not served by worker {worker} "
                              "(its tool modules differ from the workers that announced it)")


def run_call(
    ctx: WorkerContext, call: ToolCall, allowed: list[str],
    reraise: tuple[type[BaseException], ...],
) -> ToolOutput:
    if call.name not in ctx.registry and _mcp_serves(call.name):
        from worker.mcp import calls as mcp_calls

        if call.name not in allowed:
            return error_output(call, f"Tool with name {call.name} not found")
        return mcp_calls.call_tool(call, reraise, idempotent=ctx.catalog.idempotent(call.name))
    return execute_tool_call(ctx.registry, call, allowed, reraise=reraise)


def is_idempotent(ctx: WorkerContext, name: str) -> bool:
    """Python tools say so themselves; an MCP tool's flag is in its announced spec."""
    tool = ctx.registry.get(name)
    if tool is not None:
        return tool.idempotent
    return ctx.catalog.idempotent(name) if _mcp_serves(name) else True
