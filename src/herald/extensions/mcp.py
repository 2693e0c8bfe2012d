"""One configured MCP server, kept connected: its tools offered while it is up, a clear log line
and reconnection with backoff while it is not. The protocol is pydantic-ai's `MCPToolset`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import mcp_types
from fastmcp.client.transports import StdioTransport
from fastmcp.exceptions import McpError, ToolError
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.tools import ToolDefinition

from herald.config import McpServerConfig
from herald.extensions.tools import ExternalTool

log = logging.getLogger(__name__)

BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 60.0
PING_EVERY_S = 15.0


def tool_prefix(server: str) -> str:
    return f"{server.replace('-', '_')}_"


def is_rerun_safe(tool: mcp_types.Tool, configured: bool | None) -> bool:
    if configured is not None:
        return configured
    hints = tool.annotations
    return bool(hints is not None and (hints.idempotent_hint or hints.read_only_hint))


def result_text(result: Any) -> str:
    if isinstance(result, str):
        return result
    return json.dumps(result, ensure_ascii=False, default=str)


class McpServer:
    """Connects in the background; `tools()` is empty until the server is up, and again if it goes."""

    def __init__(self, name: str, config: McpServerConfig) -> None:
        self.name = name
        self.config = config
        self.source = f"MCP server '{name}'"
        self.error: str | None = "not started"
        self._tools: list[ExternalTool] = []
        self._toolset: MCPToolset[Any] | None = None
        self._broken = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()  # set while up (tests and `doctor` wait on it)
        self.connects = 0
        # A stdio server's stderr: its last lines go into the error when it fails.
        self.stderr_path = Path(tempfile.gettempdir()) / f"herald-mcp-{name}-{os.getpid()}.log"

    def tools(self) -> list[ExternalTool]:
        return list(self._tools)

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name=f"mcp-{self.name}")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            try:
                async with asyncio.timeout(self.config.timeout_s):
                    await self._task
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None

    async def wait_connected(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self.connected.wait()
        return self.connected.is_set()

    def _new_toolset(self) -> MCPToolset[Any]:
        timeout = self.config.timeout_s
        if self.config.command is not None:
            transport = StdioTransport(
                command=self.config.command,
                args=list(self.config.args),
                env=dict(self.config.env) or None,
                cwd=str(self.config.cwd) if self.config.cwd is not None else None,
                keep_alive=False,
                log_file=self.stderr_path,
            )
            return MCPToolset(
                transport,
                id=self.name,
                tool_error_behavior="error",
                init_timeout=timeout,
                read_timeout=timeout,
            )
        assert self.config.url is not None
        headers = {key: value.get_secret_value() for key, value in self.config.headers.items()}
        return MCPToolset(
            self.config.url,
            id=self.name,
            headers=headers or None,
            tool_error_behavior="error",
            init_timeout=timeout,
            read_timeout=timeout,
        )

    async def _supervise(self) -> None:
        delay = BACKOFF_START_S
        while not self._stopping.is_set():
            self._broken.clear()
            toolset = self._new_toolset()
            try:
                async with asyncio.timeout(self.config.timeout_s):
                    await toolset.__aenter__()
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}{self._stderr_tail()}"
                log.error("%s could not start: %s; retrying in %g s", self.source, self.error, delay)
            else:
                try:
                    await self._serve(toolset)
                    delay = BACKOFF_START_S
                finally:
                    self._down()
                    with contextlib.suppress(Exception):
                        await toolset.__aexit__(None, None, None)
                if self._stopping.is_set():
                    return
                log.error("%s went away: %s; reconnecting in %g s", self.source, self.error, delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def _serve(self, toolset: MCPToolset[Any]) -> None:
        """List the tools, offer them, and watch the connection until it breaks or Herald stops."""
        try:
            async with asyncio.timeout(self.config.timeout_s):
                listed = await toolset.list_tools()
        except Exception as exc:
            self.error = f"listing tools failed: {type(exc).__name__}: {exc}"
            return
        self._toolset = toolset
        self._tools = [self._external(tool) for tool in listed]
        self.error = None
        self.connects += 1
        self.connected.set()
        log.info("%s: %d tools (%s)", self.source, len(listed), ", ".join(t.name for t in self._tools))
        while not self._stopping.is_set():
            waiters = [
                asyncio.ensure_future(self._broken.wait()),
                asyncio.ensure_future(self._stopping.wait()),
            ]
            _, pending = await asyncio.wait(
                waiters, timeout=PING_EVERY_S, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()
            if self._stopping.is_set():
                return
            if self._broken.is_set():
                return
            try:
                async with asyncio.timeout(self.config.timeout_s):
                    await toolset.client.ping()
            except McpError:
                pass  # an error reply (some servers do not implement ping) is still a reply
            except Exception as exc:
                self.error = f"no answer to ping: {type(exc).__name__}: {exc}"
                return

    def _stderr_tail(self) -> str:
        if self.config.command is None:
            return ""
        try:
            lines = self.stderr_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return ""
        return f" (its stderr: {' | '.join(lines[-3:])})" if lines else ""

    def _down(self) -> None:
        self._tools = []
        self._toolset = None
        self.connected.clear()
        if self.error is None:
            self.error = "disconnected"

    def _external(self, tool: mcp_types.Tool) -> ExternalTool:
        definition = ToolDefinition(
            name=tool_prefix(self.name) + tool.name,
            description=tool.description or "",
            parameters_json_schema=dict(tool.input_schema),
        )

        async def call(args: dict[str, Any]) -> str:
            toolset = self._toolset
            if toolset is None:
                return f"error: {self.source} is not connected ({self.error}); try again later"
            try:
                return result_text(await toolset.direct_call_tool(tool.name, args))
            except ToolError as exc:
                return f"error: {exc}"
            except TimeoutError:
                raise
            except Exception as exc:
                # The tool did not fail; the connection did: reconnect in the background.
                self.error = f"{type(exc).__name__}: {exc}"
                self._broken.set()
                raise

        return ExternalTool(
            definition=definition,
            call=call,
            rerun_safe=is_rerun_safe(tool, self.config.rerun_safe),
            source=self.source,
            timeout_s=self.config.timeout_s,
        )
