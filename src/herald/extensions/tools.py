"""Tools from outside Herald (MCP servers, plugins), as the agent sees them: one definition each,
called by name with a timeout, every failure answered with text the model can read."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic_ai.tools import ToolDefinition

log = logging.getLogger(__name__)

ToolCaller = Callable[[dict[str, Any]], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class ExternalTool:
    definition: ToolDefinition
    call: ToolCaller
    # May the call run again if Herald crashed while it ran? (No: the model is told "unknown".)
    rerun_safe: bool
    source: str  # "mcp server 'lucky'", "plugin 'dice'": named in logs and errors
    timeout_s: float

    @property
    def name(self) -> str:
        return self.definition.name


class ToolSource(Protocol):
    """A provider of external tools: an MCP server, a plugin."""

    def tools(self) -> list[ExternalTool]:
        """The tools it offers right now (none while it is down)."""
        ...


class ExternalTools:
    """Every external tool currently offered, by name."""

    def __init__(self, sources: list[ToolSource] | None = None) -> None:
        self.sources = list(sources or [])

    def current(self) -> dict[str, ExternalTool]:
        found: dict[str, ExternalTool] = {}
        for source in self.sources:
            for tool in source.tools():
                if tool.name in found:
                    log.warning(
                        "tool %r from %s hides the one from %s",
                        tool.name,
                        found[tool.name].source,
                        tool.source,
                    )
                    continue
                found[tool.name] = tool
        return found

    def definitions(self) -> list[ToolDefinition]:
        return [tool.definition for tool in self.current().values()]


async def call_isolated(tool: ExternalTool, args: dict[str, Any]) -> str:
    """Run one call; an exception or timeout becomes an error text for the model, and a log line."""
    try:
        async with asyncio.timeout(tool.timeout_s):
            return await tool.call(args)
    except TimeoutError:
        log.warning("tool %s (%s) did not answer within %g s", tool.name, tool.source, tool.timeout_s)
        return f"error: {tool.source} did not answer within {tool.timeout_s:g} s; try again later"
    except Exception as exc:
        log.warning("tool %s (%s) failed: %s: %s", tool.name, tool.source, type(exc).__name__, exc)
        return f"error: {tool.name} failed: {type(exc).__name__}: {exc}"
