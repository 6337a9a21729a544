"""An MCP server written with the mcp SDK, for the integration tests (stdio and HTTP)."""
