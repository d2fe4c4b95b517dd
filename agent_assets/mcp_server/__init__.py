"""The MCP server: the operator desk for assistants, over stdio and streamable HTTP (extra: foureyes[mcp])."""
