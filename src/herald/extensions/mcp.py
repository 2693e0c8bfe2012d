"""One configured MCP server, kept connected: its tools offered while it is up, a clear log line
and reconnection with backoff while it is not. The protocol is pydantic-ai's `MCPToolset`.

A server's life: `connecting` (starting the program or reaching the URL, then listing its tools,
bounded by `timeout_s`) → `up` (tools offered; pinged every `PING_EVERY_S`, and at once after a call
that timed out) → `down` (tools withdrawn, the cause kept for errors and `herald mcp list`) →
`connecting` again after 1 s, 2 s, 4 s … at most 60 s. A call to a server that is connecting waits
for it (up to `timeout_s`); a call to one that is down is answered at once with the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import mcp_types
from fastmcp.client.transports import StdioTransport
from fastmcp.exceptions import McpError, ToolError
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.tools import ToolDefinition

from herald.config import McpServerConfig
from herald.core.clock import Clock, SystemClock
from herald.extensions.tools import ExternalTool, ToolAnswer, result_text
from herald.plugin import ToolCall

log = logging.getLogger(__name__)

BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 60.0
PING_EVERY_S = 15.0
MAX_NAME = 64  # the longest function name OpenAI-compatible APIs accept
# Error codes that mean the connection, not the request, failed.
CONNECTION_LOST = (mcp_types.CONNECTION_CLOSED, mcp_types.REQUEST_TIMEOUT)

CONNECTING = "connecting"
UP = "up"
DOWN = "down"


def tool_prefix(server: str) -> str:
    return f"{server.replace('-', '_')}_"


def offered_name(prefix: str, tool: str) -> str:
    """The name the model sees: prefixed, with characters model APIs refuse made `_`, and a long
    name shortened with a hash of the original so it stays unique."""
    name = prefix + re.sub(r"[^A-Za-z0-9_-]", "_", tool)
    if len(name) > MAX_NAME:
        digest = hashlib.sha1(tool.encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME - 9]}_{digest}"
    return name


def is_rerun_safe(tool: mcp_types.Tool, configured: bool | None) -> bool:
    if configured is not None:
        return configured
    hints = tool.annotations
    return bool(hints is not None and (hints.idempotent_hint or hints.read_only_hint))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return "TimeoutError"
    return f"{type(exc).__name__}: {exc}"


class McpServer:
    """Connects in the background; `tools()` is empty until the server is up, and again if it goes."""

    def __init__(self, name: str, config: McpServerConfig, clock: Clock | None = None) -> None:
        self.name = name
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.source = f"MCP server '{name}'"
        self.prefix = tool_prefix(name)
        self.state = DOWN
        self.error: str | None = "not started"
        self._tools: list[ExternalTool] = []
        self._toolset: MCPToolset[Any] | None = None
        self._broken = asyncio.Event()  # a call saw the connection fail
        self._broken_cause = ""
        self._check = asyncio.Event()  # a call timed out: ping now
        self._stopping = asyncio.Event()
        self._settled = asyncio.Event()  # set while not connecting
        self._settled.set()
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()  # set while up (tests and `herald mcp list` wait on it)
        self.connects = 0  # times it came up
        self.attempts = 0  # times Herald tried to start or reach it
        # A stdio server's stderr, rewritten at each start: its last lines go into the error.
        self.stderr_path = Path(tempfile.gettempdir()) / f"herald-mcp-{name}-{os.getpid()}.log"

    # --- what the agent sees ----------------------------------------------------------------

    def tools(self) -> list[ExternalTool]:
        return self._tools

    def claims(self, name: str) -> bool:
        return name.startswith(self.prefix)

    async def unavailable(self, name: str) -> str | None:
        if self.state == CONNECTING:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.timeout_s):
                    await self._settled.wait()
        if self.state == UP:
            if any(tool.name == name for tool in self._tools):
                return None
            offered = ", ".join(tool.name for tool in self._tools) or "none"
            return f"{self.source} has no such tool (it offers: {offered})"
        if self.state == CONNECTING:
            return f"{self.source} is still starting (more than {self.config.timeout_s:g} s)"
        return f"{self.source} is down ({self.error}); Herald is restarting it, try again later"

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self.state = CONNECTING
        self._settled.clear()
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
        with contextlib.suppress(OSError):
            self.stderr_path.unlink(missing_ok=True)

    async def wait_connected(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self.connected.wait()
        return self.connected.is_set()

    async def _supervise(self) -> None:
        failures = 0
        logged: str | None = None  # the cause of this outage already logged at ERROR
        was_up = False
        while not self._stopping.is_set():
            self.state = CONNECTING
            self._settled.clear()
            self.attempts += 1
            toolset = self._new_toolset()
            try:
                listed = await self._connect(toolset)
            except Exception as exc:
                cause = _describe(exc) + self._stderr_tail()
                went_away = False
            else:
                self._up(toolset, listed, again=logged is not None)
                failures, logged, was_up = 0, None, True
                try:
                    lost = await self._watch(toolset)
                finally:
                    self._withdraw()
                    await self._close(toolset)
                if lost is None:
                    return
                cause = lost + self._stderr_tail()
                went_away = True
            self.state, self.error = DOWN, cause
            self._settled.set()
            if self._stopping.is_set():
                return
            delay = min(BACKOFF_START_S * 2**failures, BACKOFF_MAX_S)
            failures = min(failures + 1, 16)
            if went_away:
                log.error(
                    "%s went away: %s; its tools are withdrawn, reconnecting in %g s",
                    self.source,
                    cause,
                    delay,
                )
            elif cause != logged:
                log.error(
                    "%s could not %s: %s; its tools are unavailable, retrying in %g s (then less often)",
                    self.source,
                    "reconnect" if was_up else "start",
                    cause,
                    delay,
                )
            else:
                log.info("%s still down (%s); retrying in %g s", self.source, cause, delay)
            logged = cause
            await self._pause(delay)

    async def _connect(self, toolset: MCPToolset[Any]) -> list[mcp_types.Tool]:
        """Start (or reach) the server and list its tools, within `timeout_s` each."""
        if self.config.command is not None:
            with contextlib.suppress(OSError):
                self.stderr_path.write_text("", encoding="utf-8")
        async with asyncio.timeout(self.config.timeout_s):
            await toolset.__aenter__()
        try:
            async with asyncio.timeout(self.config.timeout_s):
                return await toolset.list_tools()
        except BaseException:
            await self._close(toolset)
            raise

    async def _watch(self, toolset: MCPToolset[Any]) -> str | None:
        """Until the connection breaks (its cause) or Herald stops (None)."""
        while True:
            waiters = [
                asyncio.ensure_future(event.wait()) for event in (self._broken, self._stopping, self._check)
            ]
            try:
                await asyncio.wait(waiters, timeout=PING_EVERY_S, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
            if self._stopping.is_set():
                return None
            if self._broken.is_set():
                return self._broken_cause
            self._check.clear()
            try:
                async with asyncio.timeout(self.config.timeout_s):
                    await toolset.client.ping()
            except McpError as exc:
                if exc.code in CONNECTION_LOST:
                    return f"no answer to ping: {_describe(exc)}"
                # Any other error reply (some servers do not implement ping) is still a reply.
            except TimeoutError:
                return f"no answer to ping within {self.config.timeout_s:g} s (the server hangs)"
            except Exception as exc:
                return f"no answer to ping: {_describe(exc)}"

    async def _pause(self, seconds: float) -> None:
        """Back off on the Clock, never longer than the same real time, and wake at once on stop: a
        virtual clock can shorten a backoff but cannot stall a restart."""
        waiters = [
            asyncio.ensure_future(self.clock.sleep(seconds)),
            asyncio.ensure_future(asyncio.sleep(seconds)),
            asyncio.ensure_future(self._stopping.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter

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

    async def _close(self, toolset: MCPToolset[Any]) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.config.timeout_s):
                await toolset.__aexit__(None, None, None)

    def _up(self, toolset: MCPToolset[Any], listed: list[mcp_types.Tool], *, again: bool) -> None:
        tools: list[ExternalTool] = []
        names: set[str] = set()
        for tool in listed:
            external = self._external(tool)
            if external.name in names:
                log.warning(
                    "%s: tool %r is offered under a name already taken; skipped", self.source, tool.name
                )
                continue
            names.add(external.name)
            tools.append(external)
        self._broken.clear()
        self._check.clear()
        self._toolset, self._tools = toolset, tools
        self.state, self.error = UP, None
        self.connects += 1
        self.connected.set()
        self._settled.set()
        log.info(
            "%s is up%s: %d tools (%s)",
            self.source,
            " again" if again else "",
            len(tools),
            ", ".join(tool.name for tool in tools),
        )

    def _withdraw(self) -> None:
        self._tools = []
        self._toolset = None
        self.connected.clear()

    def _stderr_tail(self) -> str:
        if self.config.command is None:
            return ""
        try:
            lines = self.stderr_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return ""
        return f" (its stderr ends: {' | '.join(line.strip() for line in lines[-3:])})" if lines else ""

    def _external(self, tool: mcp_types.Tool) -> ExternalTool:
        definition = ToolDefinition(
            name=offered_name(self.prefix, tool.name),
            description=tool.description or "",
            parameters_json_schema=dict(tool.input_schema),
        )
        rerun_safe = is_rerun_safe(tool, self.config.rerun_safe)

        async def call(args: dict[str, Any], context: ToolCall) -> ToolAnswer:
            toolset = self._toolset
            if toolset is None:
                return ToolAnswer(
                    f"error: {self.source} is down ({self.error}); try again later", failed=True
                )
            try:
                # The call's key travels in `_meta`, for a server that deduplicates its work.
                result = await toolset.direct_call_tool(tool.name, args, metadata={"herald/key": context.key})
            except ToolError as exc:
                return ToolAnswer(f"error: {exc}", failed=True)
            except McpError as exc:
                if exc.code not in CONNECTION_LOST:
                    return ToolAnswer(f"error: {exc}", failed=True)
                return self._lost(definition.name, rerun_safe, exc)
            except asyncio.CancelledError:
                self._check.set()  # timed out (or Herald is stopping): is the server still there?
                raise
            except Exception as exc:
                return self._lost(definition.name, rerun_safe, exc)
            return ToolAnswer(result_text(result))

        return ExternalTool(
            definition=definition,
            call=call,
            rerun_safe=rerun_safe,
            source=self.source,
            timeout_s=self.config.timeout_s,
        )

    def _lost(self, name: str, rerun_safe: bool, exc: Exception) -> ToolAnswer:
        """The connection failed during a call: restart the server; tell the model what is known."""
        cause = _describe(exc)
        log.warning("%s: call of %s failed: %s", self.source, name, cause)
        self._broken_cause = f"the connection failed during a call of {name}: {cause}"
        self._broken.set()
        if rerun_safe:
            return ToolAnswer(
                f"error: {self.source} went away during the call ({cause}); it is being restarted, "
                "try again later",
                failed=True,
            )
        return ToolAnswer(
            f"outcome unknown: {self.source} went away during the call ({cause}), and {name} may "
            "have done its work before; do not call it again unless the user asks",
            failed=True,
        )
