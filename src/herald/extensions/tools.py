"""Tools from outside Herald (MCP servers, plugins), as the agent sees them: one definition each,
called by name with a timeout, every failure answered with text the model can read."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic_ai.messages import BinaryContent
from pydantic_ai.tools import ToolDefinition

from herald.plugin import ToolCall

log = logging.getLogger(__name__)

# A result longer than this is cut (and says so): it is stored with the turn and sent to the model
# on every later step of it.
MAX_RESULT_CHARS = 16_000


@dataclass(frozen=True, slots=True)
class ToolAnswer:
    """What a call gives the model: a result, an error to read, or a request to fix the arguments."""

    text: str
    failed: bool = False
    retry: bool = False  # the arguments were wrong: the model should call again with better ones


ToolCaller = Callable[[dict[str, Any], ToolCall], Awaitable[ToolAnswer]]


@dataclass(frozen=True, slots=True)
class ExternalTool:
    definition: ToolDefinition
    call: ToolCaller
    # May the call run again if Herald crashed while it ran? (No: the model is told "unknown".)
    rerun_safe: bool
    source: str  # "MCP server 'lucky'", "plugin 'dice'": named in logs and errors
    timeout_s: float

    @property
    def name(self) -> str:
        return self.definition.name


class ToolSource(Protocol):
    """A provider of external tools: an MCP server, the plugins."""

    def tools(self) -> list[ExternalTool]:
        """The tools it offers right now (none while it is down)."""
        ...

    def claims(self, name: str) -> bool:
        """Whether `name` is (or would be) one of its tools, offered right now or not."""
        ...

    async def unavailable(self, name: str) -> str | None:
        """Why a claimed tool is not offered; None once it is (a server still connecting is waited
        for, up to its timeout)."""
        ...


class ExternalTools:
    """Every external tool currently offered, by name."""

    def __init__(self, sources: list[ToolSource] | None = None) -> None:
        self.sources = list(sources or [])
        self._hidden: set[tuple[str, str]] = set()  # collisions already logged

    def current(self) -> dict[str, ExternalTool]:
        found: dict[str, ExternalTool] = {}
        for source in self.sources:
            for tool in source.tools():
                first = found.get(tool.name)
                if first is None:
                    found[tool.name] = tool
                elif (tool.name, tool.source) not in self._hidden:
                    self._hidden.add((tool.name, tool.source))
                    log.warning(
                        "tool %r of %s is hidden by the one of %s", tool.name, tool.source, first.source
                    )
        return found

    def definitions(self) -> list[ToolDefinition]:
        return [tool.definition for tool in self.current().values()]

    def claims(self, name: str) -> bool:
        return name in self.current() or any(source.claims(name) for source in self.sources)

    def rerun_safe(self, name: str) -> bool:
        """Whether a call may simply run again after a crash mid-call. A tool of a server that is not
        up yet counts as unsafe: it may be up by the time the call runs."""
        tool = self.current().get(name)
        if tool is not None:
            return tool.rerun_safe
        return not any(source.claims(name) for source in self.sources)

    async def call(self, name: str, args: dict[str, Any], call: ToolCall) -> ToolAnswer:
        """Run a call of a claimed tool; never raises (but for cancellation)."""
        tool = self.current().get(name)
        if tool is None:
            reasons = [await source.unavailable(name) for source in self.sources if source.claims(name)]
            tool = self.current().get(name)
            if tool is None:
                reason = next((r for r in reasons if r), "it is not offered")
                return ToolAnswer(f"error: tool {name} is unavailable: {reason}", failed=True)
        return await call_isolated(tool, args, call)


async def call_isolated(tool: ExternalTool, args: dict[str, Any], call: ToolCall) -> ToolAnswer:
    """Run one call; an exception or timeout becomes an error text for the model, and a log line."""
    try:
        async with asyncio.timeout(tool.timeout_s):
            answer = await tool.call(args, call)
    except TimeoutError:
        log.warning("tool %s (%s) did not answer within %g s", tool.name, tool.source, tool.timeout_s)
        if tool.rerun_safe:
            text = f"error: {tool.source} did not answer within {tool.timeout_s:g} s; try again later"
        else:
            text = (
                f"outcome unknown: {tool.source} did not answer within {tool.timeout_s:g} s, and "
                f"{tool.name} may still have done its work; do not call it again unless the user asks"
            )
        return ToolAnswer(text, failed=True)
    except Exception as exc:
        log.error(
            "tool %s (%s) failed: %s: %s", tool.name, tool.source, type(exc).__name__, exc, exc_info=True
        )
        return ToolAnswer(f"error: {tool.name} failed: {type(exc).__name__}: {exc}", failed=True)
    return ToolAnswer(_cut(answer.text), failed=answer.failed, retry=answer.retry)


def result_text(result: Any) -> str:
    """A tool's return value as the text the model reads: strings as they are, structures as JSON,
    images and other binary content as a note of what they were."""
    if isinstance(result, str):
        return result
    if isinstance(result, BinaryContent):
        return f"[{result.media_type}, {len(result.data)} bytes: not shown]"
    if isinstance(result, list) and any(isinstance(part, BinaryContent) for part in result):
        return "\n".join(result_text(part) for part in result)
    return json.dumps(result, ensure_ascii=False, default=str)


def _cut(text: str) -> str:
    if len(text) <= MAX_RESULT_CHARS:
        return text
    return text[:MAX_RESULT_CHARS] + f"\n[cut: {len(text) - MAX_RESULT_CHARS} more characters]"
