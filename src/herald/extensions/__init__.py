"""What operators add to Herald: MCP servers' tools and plugins (tools, commands, hooks)."""

from herald.extensions.mcp import McpServer
from herald.extensions.plugins import Installed, Plugins, installed
from herald.extensions.tools import ExternalTool, ExternalTools, ToolAnswer, ToolSource, call_isolated

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
