"""The producer side: light (no worker code or dependencies) and strict about its input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from producer.client import AgentClient, InvalidSessionId

ROOT = Path(__file__).resolve().parents[2]


def test_producer_imports_no_worker_code_and_no_worker_dependencies() -> None:
    code = (
        "import json, sys\n"
        "import producer.client, producer.cli, producer.contracts, producer.jobstore\n"
        "print(json.dumps(sorted(m for m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    loaded = json.loads(done.stdout)
    heavy = [m for m in loaded if m.split(".")[0] in ("worker", "openai", "tiktoken", "simulator")]
    assert heavy == []


def test_client_refuses_malformed_session_ids_before_touching_redis() -> None:
    with AgentClient("redis://127.0.0.1:1/0") as client:  # nothing listens there
        with pytest.raises(InvalidSessionId, match="session_id"):
            client.history("bad session!")
        with pytest.raises(InvalidSessionId):
            client.reset("")


def test_a_worker_without_mcp_servers_never_imports_the_mcp_sdk() -> None:
    """The SDK costs each process about 28 MB (eight prefork children: 224 MB) and half
    a second; only workers with AGENT_MCP_CONFIG load it."""
    code = "import json, sys, worker\nprint(json.dumps(sorted(sys.modules)))\n"
    env = {k: v for k, v in os.environ.items() if k != "AGENT_MCP_CONFIG"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, check=True, env=env)
    loaded = json.loads(done.stdout)
    assert [m for m in loaded if m.split(".")[0] == "mcp"] == []
