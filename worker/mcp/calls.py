"""Running one MCP tool call inside an ``agents.tool.run`` task (any pool process).

Each process keeps one connection per server, opened on its first call and reused. Every
outcome is a ToolOutput: ``isError`` results, protocol errors, a dead server and a call
past its time limit become error outputs for the model; content is capped.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

from mcp import types as mcp_types

from producer.contracts import ToolCall, ToolOutput
from worker.mcp import config as mcp_config
from worker.mcp.connection import ProtocolError, ServerConnection, ServerDown
from worker.mcp.loop import close_process_loop, process_loop
from worker.tool_outputs import error_output

logger = logging.getLogger("celery_agents")

_servers: dict[str, mcp_config.ServerConfig] | None = None
_connections: dict[str, ServerConnection] = {}
_lock = threading.Lock()


def max_content_chars() -> int:
    return int(os.environ.get("AGENT_MCP_MAX_CONTENT_CHARS", "20000"))


def servers() -> dict[str, mcp_config.ServerConfig]:
    """The configured servers, read once per process (a bad file was refused at start)."""
    global _servers
    if _servers is None:
        try:
            _servers = mcp_config.load()
        except mcp_config.McpConfigError as exc:
            logger.error("%s: %s", mcp_config.ENV_VAR, exc)
            _servers = {}
    return _servers


def serves(name: str) -> bool:
    parts = mcp_config.split_name(name)
    return parts is not None and parts[0] in servers()


def connection(server: str) -> ServerConnection:
    with _lock:
        conn = _connections.get(server)
        if conn is None or conn.loop.pid != os.getpid():
            conn = _connections[server] = ServerConnection(servers()[server], process_loop())
        return conn


def cap(text: str, limit: int | None = None) -> str:
    limit = max_content_chars() if limit is None else limit
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[truncated: {len(text) - limit} more characters]"


def content_text(result: mcp_types.CallToolResult) -> str:
    """The model's view of a result: text blocks joined, other blocks described."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        else:
            kind = getattr(block, "type", type(block).__name__)
            mime = getattr(block, "mime_type", None)
            parts.append(f"[{kind}{' ' + mime if mime else ''} content omitted]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


def call_tool(
    call: ToolCall, reraise: tuple[type[BaseException], ...] = (), idempotent: bool = False
) -> ToolOutput:
    """Call the MCP tool named by ``call`` (``SERVER__TOOL``); never raises for the
    server's failures (exceptions in ``reraise``, e.g. a soft time limit, propagate).

    A connection found dead (the server restarted since this process last used it) is
    opened again and an ``idempotent`` call sent once more; any other call could have
    run already, so it gets the error output instead.
    """
    parts = mcp_config.split_name(call.name)
    assert parts is not None
    server, tool = parts
    prefix = f"Error in calling tool {call.name}"
    try:
        arguments: Any = json.loads(call.arguments) if call.arguments.strip() else {}
    except (ValueError, RecursionError) as exc:
        return error_output(call, f"{prefix}: the input json block is malformed: {exc}")
    if not isinstance(arguments, dict):
        return error_output(call, f"{prefix}: the input json block is malformed: "
                                  "expected a JSON object")
    conn = connection(server)
    timeout = conn.config.timeout
    try:
        try:
            result = conn.request(lambda s: s.call_tool(tool, arguments), timeout)
        except ServerDown:
            if not idempotent:
                raise
            logger.info("MCP server %s: connection lost; calling %s again", server, call.name)
            result = conn.request(lambda s: s.call_tool(tool, arguments), timeout)
    except reraise:
        raise
    except TimeoutError:
        return error_output(call, f"Error: MCP tool {call.name} did not answer within its "
                                  f"time limit of {timeout:g} s")
    except ProtocolError as exc:
        return error_output(call, f"Error: MCP server {server} sent a malformed message "
                                  f"({cap(str(exc), 300)}); the connection is reset")
    except ServerDown as exc:
        return error_output(call, f"Error: MCP server {server} is not reachable or stopped "
                                  f"during the call ({cap(str(exc), 300)}); it is restarted "
                                  "for the next call")
    except Exception as exc:  # an error response of the server (MCPError) and the like
        return error_output(call, f"{prefix}: {type(exc).__name__}: {cap(str(exc), 500)}")
    text = cap(content_text(result))
    return ToolOutput(tool_name=call.name, tool_call_id=call.id, arguments=call.arguments,
                      content=text, is_error=bool(result.is_error))


def close_all() -> None:
    """Close this process's sessions and loop (worker process shutdown)."""
    with _lock:
        conns = [c for c in _connections.values() if c.loop.pid == os.getpid()]
        _connections.clear()
    for conn in conns:
        conn.close()
    close_process_loop()


def _forget_after_fork() -> None:
    global _lock
    _connections.clear()
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
