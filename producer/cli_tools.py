"""``celery-agents tools [--json]``: the live tool registry (producer/tool_registry.py).

Exit code 0, also when no tool is served (it says so).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from producer.client import AgentClient
from producer.exit_codes import EXIT_OK


def add_tools_command(commands: Any) -> None:
    """Register the ``tools`` subcommand on the CLI's subparsers."""
    tools = commands.add_parser(
        "tools", help="list the tools live workers serve (schemas, queues, servers)"
    )
    tools.add_argument("--json", action="store_true",
                       help="the registry entries as JSON, with their JSON schemas")


def run_tools(client: AgentClient, args: argparse.Namespace) -> int:
    entries = client.tools()
    if args.json:
        print(json.dumps([e.model_dump(mode="json") for e in entries], indent=2))
        return EXIT_OK
    if not entries:
        print("no tools are served: no tools worker is running (or none announced yet)")
        return EXIT_OK
    for entry in entries:
        flags = [flag for flag, on in (
            ("return_direct", entry.return_direct), ("not-idempotent", not entry.idempotent),
            ("requires_approval", entry.requires_approval),
        ) if on]
        params = ", ".join(entry.parameters.get("properties", {}))
        print(f"{entry.name}({params})  queue={entry.queue}  servers={','.join(entry.servers)}"
              f"{'  ' + ' '.join(flags) if flags else ''}"
              f"{'  source=' + entry.source if entry.source != 'python' else ''}")
        if entry.description:
            print(f"    {entry.description}")
        if entry.refused:
            print(f"    CONFLICT: a different definition from {', '.join(entry.refused)} "
                  "is refused (give every worker the same version)")
    return EXIT_OK
