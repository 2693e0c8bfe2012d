"""What operators add to Herald: MCP servers' tools and plugins (tools, commands, hooks).

`McpServer` is imported on first use: the MCP client libraries take about a third of Herald's
start-up imports, and most bots configure no MCP server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from herald.extensions.plugins import Installed, Plugins, installed
from herald.extensions.tools import ExternalTool, ExternalTools, ToolAnswer, ToolSource, call_isolated

if TYPE_CHECKING:
    from herald.extensions.mcp import McpServer

__all__ = [
    "ExternalTool",
    "ExternalTools",
    "Installed",
    "McpServer",
    "Plugins",
    "ToolAnswer",
    "ToolSource",
    "call_isolated",
    "installed",
]


def __getattr__(name: str) -> Any:
    if name == "McpServer":
        from herald.extensions.mcp import McpServer

        return McpServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
