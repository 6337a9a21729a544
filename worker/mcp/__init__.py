"""Tools from MCP servers (``AGENT_MCP_CONFIG``), served by tools workers like Python tools.

config: the JSON file; loop: one asyncio loop thread per process; connection: one
session per server, reconnected after a crash; calls: running a call in a tool task;
manager: the main process's sessions, whose tool lists are announced in the registry.
"""
