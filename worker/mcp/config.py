"""``AGENT_MCP_CONFIG``: the MCP servers a tools worker connects to, in the usual format::

    {"mcpServers": {
        "files": {"command": "npx", "args": ["-y", "server-files"],
                  "env": {"TOKEN": "${FILES_TOKEN}"}},
        "crm": {"url": "http://127.0.0.1:9000/mcp",
                "headers": {"Authorization": "Bearer ${CRM_TOKEN}"}}
    }}

Values of ``env`` and ``headers`` may name ``${ENV_VAR}``: they are filled in from the
worker's environment only when a connection is made, so secrets stay in that environment
(never in Redis, events, logs or Flower). Per server, besides: ``cwd``, ``queue`` (default
``tools``) and ``timeout`` (seconds a call may take, default 60).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from producer.contracts import DEFAULT_TOOL_QUEUE, TOOL_NAME_PATTERN, TOOL_QUEUE_PATTERN

ENV_VAR = "AGENT_MCP_CONFIG"
SEPARATOR = "__"  # tools are announced as SERVER__TOOL
_SERVER_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]|_(?!_))*$")  # no "__" inside
_TOOL_NAME_RE = re.compile(TOOL_NAME_PATTERN)
_QUEUE_RE = re.compile(TOOL_QUEUE_PATTERN)
_REF_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class McpConfigError(ValueError):
    """The config file is missing, not JSON, or describes a server wrongly."""


@dataclass(frozen=True)
class ServerConfig:
    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    # Unresolved: "${VAR}" stays as written until connect time (see resolve()).
    env: dict[str, str] = field(default_factory=dict, hash=False)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict, hash=False)
    queue: str = DEFAULT_TOOL_QUEUE
    timeout: float = 60.0

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "http"

    def describe(self) -> str:
        """For logs: what is connected, never a header or env value."""
        return f"{self.command} {' '.join(self.args)}".strip() if self.command else str(self.url)


def resolve(values: dict[str, str]) -> dict[str, str]:
    """Fill in ``${VAR}`` references from the environment; a missing one raises
    McpConfigError naming the variable (never its value)."""
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise McpConfigError(f"environment variable {name} is not set")
        return os.environ[name]

    return {key: _REF_RE.sub(one, value) for key, value in values.items()}


def tool_name(server: str, tool: str) -> str | None:
    """The registry name of an MCP tool; None if it cannot be one (bad characters, long)."""
    name = f"{server}{SEPARATOR}{tool}"
    return name if _TOOL_NAME_RE.match(name) else None


def split_name(name: str) -> tuple[str, str] | None:
    server, sep, tool = name.partition(SEPARATOR)
    return (server, tool) if sep and server and tool else None


def _strings(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise McpConfigError(f"{what} must be an object of strings")
    return dict(value)


def parse(data: Any) -> dict[str, ServerConfig]:
    if not isinstance(data, dict) or not isinstance(data.get("mcpServers"), dict):
        raise McpConfigError('the file must hold {"mcpServers": {NAME: {...}}}')
    servers: dict[str, ServerConfig] = {}
    for name, spec in data["mcpServers"].items():
        where = f"mcpServers.{name}"
        if not isinstance(name, str) or not _SERVER_NAME_RE.match(name):
            raise McpConfigError(f"{where}: a server name is letters, digits, - and single _")
        if not isinstance(spec, dict):
            raise McpConfigError(f"{where}: must be an object")
        command, url = spec.get("command"), spec.get("url")
        if bool(command) == bool(url):
            raise McpConfigError(f"{where}: give either command (stdio) or url (HTTP)")
        args = spec.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise McpConfigError(f"{where}.args must be a list of strings")
        queue = spec.get("queue", DEFAULT_TOOL_QUEUE)
        if not isinstance(queue, str) or not _QUEUE_RE.match(queue):
            raise McpConfigError(f"{where}.queue: invalid queue name")
        timeout = spec.get("timeout", 60)
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise McpConfigError(f"{where}.timeout must be a positive number of seconds")
        servers[name] = ServerConfig(
            name=name, command=command, args=tuple(args),
            env=_strings(spec.get("env"), f"{where}.env"), cwd=spec.get("cwd"), url=url,
            headers=_strings(spec.get("headers"), f"{where}.headers"),
            queue=queue, timeout=float(timeout),
        )
    return servers


def configured() -> bool:
    """Does this process have MCP servers at all? (Then, and only then, the MCP SDK is
    imported: it costs each process about 28 MB and half a second.)"""
    return bool(os.environ.get(ENV_VAR))


def load(path: str | None = None) -> dict[str, ServerConfig]:
    """The servers of ``$AGENT_MCP_CONFIG`` (none when unset)."""
    path = os.environ.get(ENV_VAR) if path is None else path
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise McpConfigError(f"{ENV_VAR}={path}: {type(exc).__name__}: {exc}") from None
    return parse(data)
