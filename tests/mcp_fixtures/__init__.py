"""An MCP server written with the mcp SDK, for the integration tests (stdio and HTTP)."""

from __future__ import annotations

import uuid
from pathlib import Path

SERVER_SCRIPT = Path(__file__).with_name("server.py")
# The secret a test config passes as ${MCP_TEST_SECRET} (env of a stdio server, bearer
# header of an HTTP one); the secret scan looks for it everywhere (test_secrets.py).
MCP_TEST_SECRET = "mcp-secret-" + uuid.uuid4().hex
