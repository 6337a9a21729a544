"""AGENT_MCP_CONFIG parsing, ${VAR} references, tool naming and result shaping (pure)."""

from __future__ import annotations

import pytest
from mcp import types as mcp_types

from producer.contracts import ToolCall
from worker.mcp import calls
from worker.mcp.config import McpConfigError, parse, resolve, split_name, tool_name
from worker.mcp.manager import to_spec
from worker.tools.loader import split_entry


def test_both_transports_parse_and_references_stay_unresolved_until_connect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    servers = parse({"mcpServers": {
        "files": {"command": "npx", "args": ["-y", "srv"], "env": {"T": "${FILES_TOKEN}"}},
        "crm": {"url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer ${CRM}"},
                "queue": "tools.crm", "timeout": 5},
    }})
    assert servers["files"].transport == "stdio" and servers["files"].env == {"T": "${FILES_TOKEN}"}
    assert servers["crm"].transport == "http" and servers["crm"].queue == "tools.crm"
    assert "Bearer" not in servers["crm"].describe()  # what logs show: no header values
    monkeypatch.setenv("CRM", "s3cret")
    assert resolve(servers["crm"].headers) == {"Authorization": "Bearer s3cret"}
    monkeypatch.delenv("FILES_TOKEN", raising=False)
    with pytest.raises(McpConfigError, match="FILES_TOKEN is not set"):
        resolve(servers["files"].env)


@pytest.mark.parametrize("bad, message", [
    ({}, "mcpServers"),
    ({"mcpServers": {"a__b": {"command": "x"}}}, "server name"),
    ({"mcpServers": {"a": {"command": "x", "url": "http://h"}}}, "either command"),
    ({"mcpServers": {"a": {}}}, "either command"),
    ({"mcpServers": {"a": {"command": "x", "args": "nope"}}}, "args"),
    ({"mcpServers": {"a": {"command": "x", "env": {"K": 1}}}}, "env"),
    ({"mcpServers": {"a": {"command": "x", "timeout": 0}}}, "timeout"),
    ({"mcpServers": {"a": {"command": "x", "queue": "bad queue"}}}, "queue"),
])
def test_bad_configs_are_refused_naming_the_field(bad: object, message: str) -> None:
    with pytest.raises(McpConfigError, match=message):
        parse(bad)


def test_tool_names_and_hints() -> None:
    assert tool_name("fx", "add") == "fx__add" and split_name("fx__add") == ("fx", "add")
    assert tool_name("fx", "has.dot") is None and tool_name("fx", "x" * 70) is None
    assert split_name("plain") is None
    server = parse({"mcpServers": {"fx": {"command": "x", "timeout": 7}}})["fx"]
    schema = {"type": "object", "title": "addArguments", "properties": {"a": {"type": "integer"}}}
    read_only = mcp_types.Tool(name="add", input_schema=schema,
                               annotations=mcp_types.ToolAnnotations(read_only_hint=True))
    plain = mcp_types.Tool(name="shout", input_schema=schema)
    add = to_spec(server, read_only)
    shout = to_spec(server, plain)
    assert add is not None and shout is not None
    assert add.idempotent and not shout.idempotent and add.time_limit == 7
    assert "title" not in add.parameters and add.source == "mcp:fx"


def test_results_are_text_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    result = mcp_types.CallToolResult(content=[
        mcp_types.TextContent(type="text", text="a"),
        mcp_types.ImageContent(type="image", data="AAAA", mime_type="image/png"),
    ])
    assert calls.content_text(result) == "a\n[image image/png content omitted]"
    structured = mcp_types.CallToolResult(content=[], structured_content={"result": 3})
    assert calls.content_text(structured) == '{"result": 3}'
    monkeypatch.setenv("AGENT_MCP_MAX_CONTENT_CHARS", "10")
    assert calls.cap("x" * 25) == "x" * 10 + "\n[truncated: 15 more characters]"


def test_bad_arguments_never_reach_the_server() -> None:
    calls._servers = parse({"mcpServers": {"fx": {"command": "/nonexistent"}}})
    try:
        out = calls.call_tool(ToolCall(id="c", name="fx__add", arguments="{nope"))
        assert out.is_error and "malformed" in out.content
        out = calls.call_tool(ToolCall(id="c", name="fx__add", arguments="[1]"))
        assert out.is_error and "expected a JSON object" in out.content
    finally:
        calls._servers = None


def test_tool_module_entries_may_name_a_queue() -> None:
    assert split_entry("pkg.billing=tools.billing") == ("pkg.billing", "tools.billing")
    assert split_entry("pkg.plain") == ("pkg.plain", None)
