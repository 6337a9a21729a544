"""A test MCP server built with the official SDK: ``python server.py stdio`` or
``python server.py http PORT``.

Tools: ``add`` (read-only, so idempotent), ``shout``, ``fail`` (raises: ``isError``),
``slow``, ``huge`` (returns a lot of text), ``crash`` (the process exits mid-call),
``garbage`` (writes a line that is not JSON-RPC to stdout, then hangs), ``token_hash``
(a hash of the ``FIXTURE_TOKEN`` env var, to check ``${VAR}`` substitution). When the file
named by ``$MCP_FIXTURE_EXTRA`` appears, a tool ``extra`` is listed and the session that
listed tools is sent ``notifications/tools/list_changed``. Over HTTP, a request without
``Authorization: Bearer $MCP_FIXTURE_BEARER`` (when set) is refused with 401.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

_sessions: list[Any] = []


def _extra_on() -> bool:
    marker = os.environ.get("MCP_FIXTURE_EXTRA")
    return bool(marker) and os.path.exists(marker)


class FixtureServer(MCPServer):
    async def _handle_list_tools(self, ctx: Any, params: Any) -> Any:
        # Remember who listed, to tell them when the list changes.
        if ctx.session not in _sessions:
            _sessions.append(ctx.session)
        result = await super()._handle_list_tools(ctx, params)
        if not _extra_on():  # "extra" exists once the marker file does
            result.tools = [t for t in result.tools if t.name != "extra"]
        return result


async def _watch_extra(server: MCPServer) -> None:
    if not os.environ.get("MCP_FIXTURE_EXTRA"):
        return
    while not _extra_on():
        await asyncio.sleep(0.1)
    # Every remembered object is a view of this process's one connection (stdio) or of
    # one of its sessions (HTTP); the last one is enough for stdio, HTTP tells each.
    targets = _sessions[-1:] if len(sys.argv) < 2 or sys.argv[1] != "http" else _sessions
    for session in list(targets):
        with suppress(Exception):  # a session that has gone away
            await session.send_tool_list_changed()
    _sessions.clear()


@asynccontextmanager
async def _lifespan(server: MCPServer) -> AsyncIterator[None]:
    task = asyncio.get_running_loop().create_task(_watch_extra(server))
    try:
        yield
    finally:
        task.cancel()


server = FixtureServer("fixture", lifespan=_lifespan)


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def extra(text: str) -> str:
    """A tool that appears while the server runs (listed once the marker file exists)."""
    if not _extra_on():
        raise RuntimeError("extra is not there yet")
    return f"extra {text}"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def shout(text: str) -> str:
    """Upper-case a text (not marked idempotent)."""
    return text.upper()


@server.tool()
def fail(reason: str) -> str:
    """Always raise."""
    raise RuntimeError(reason)


@server.tool()
async def slow(seconds: float) -> str:
    """Sleep, then answer."""
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def huge(chars: int) -> str:
    """Return a text of the given length."""
    return "x" * chars


@server.tool()
def crash() -> str:
    """The server process dies in the middle of the call."""
    sys.stdout.flush()
    os._exit(3)


@server.tool()
async def garbage() -> str:
    """Write a line that is not JSON-RPC to the transport, then hang."""
    # The SDK serves the wire from a private duplicate of fd 1 (fd 1 itself is diverted
    # to stderr), so write there.
    from mcp.server import stdio as sdk_stdio

    claim = sdk_stdio._claims.get(1)
    os.write(claim.private_fd if claim and claim.private_fd else 1, b"not json-rpc {{{\n")
    await asyncio.sleep(3600)
    return "never"


@server.tool()
def token_hash() -> str:
    """sha256 of $FIXTURE_TOKEN (never the token itself)."""
    token = os.environ.get("FIXTURE_TOKEN", "")
    return hashlib.sha256(token.encode()).hexdigest() if token else "no token"


def _serve_http(port: int) -> None:
    import uvicorn
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import PlainTextResponse

    app = server.streamable_http_app(host="127.0.0.1")
    bearer = os.environ.get("MCP_FIXTURE_BEARER")

    async def check(request: Any, call_next: Any) -> Any:
        if bearer and request.headers.get("authorization") != f"Bearer {bearer}":
            return PlainTextResponse("unauthorized", status_code=401)
        return await call_next(request)

    app.add_middleware(BaseHTTPMiddleware, dispatch=check)
    print(f"mcp fixture listening on 127.0.0.1:{port}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        _serve_http(int(sys.argv[2]))
    else:
        server.run("stdio")
