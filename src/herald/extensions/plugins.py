"""Installed plugins (entry points in group `herald.plugins`): found, loaded if config allows,
and run isolated (a plugin that raises or hangs is logged by name and skipped)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import ValidationError
from pydantic_ai import RunContext, Tool
from pydantic_ai.models import Model
from pydantic_ai.models.function import FunctionModel
from pydantic_ai.usage import RunUsage

from herald.config import PluginsConfig
from herald.core.events import InboundEvent, InboundMessage
from herald.delivery.receipts import DeliveryResult
from herald.extensions.tools import ExternalTool, ToolAnswer, result_text
from herald.plugin import CommandCall, Delivery, Plugin, PluginCommand, PluginTool, Reply, ToolCall

log = logging.getLogger(__name__)

GROUP = "herald.plugins"
STOP_WAIT_S = 5.0  # how long stopping waits for hooks still running


@dataclass
class Installed:
    """One entry point, and what became of it."""

    name: str
    package: str
    enabled: bool
    plugin: Plugin | None = None
    error: str | None = None


def installed(config: PluginsConfig) -> list[Installed]:
    """Every plugin installed, loaded if enabled; a plugin that fails to load carries its error."""
    found: list[Installed] = []
    for point in sorted(entry_points(group=GROUP), key=lambda p: p.name):
        entry = Installed(point.name, _package(point), config.allows(point.name))
        if entry.enabled:
            try:
                loaded = point.load()
                if not isinstance(loaded, Plugin):
                    raise TypeError(f"{point.value} is a {type(loaded).__name__}, not a herald.plugin.Plugin")
                if loaded.name != point.name:
                    raise ValueError(
                        f"the entry point is named {point.name!r} but the plugin {loaded.name!r}; "
                        "give both the same name"
                    )
                entry.plugin = loaded
            except Exception as exc:
                entry.error = f"{type(exc).__name__}: {exc}"
                log.error("plugin %r could not be loaded (%s): %s", point.name, point.value, entry.error)
        found.append(entry)
    for name in config.named():
        if name not in {entry.name for entry in found}:
            log.warning("[plugins] names %r, but no such plugin is installed", name)
    return found


def _package(point: EntryPoint) -> str:
    return point.dist.name if point.dist is not None else point.value.partition(":")[0]


async def _no_model(messages: Any, info: Any) -> Any:
    raise RuntimeError("a plugin tool cannot ask the model")


@dataclass
class Plugins:
    """The loaded plugins' tools, commands and hooks, each wrapped so a failure stays the plugin's."""

    plugins: list[Plugin] = field(default_factory=list)
    timeout_s: float = 30.0
    # What a tool's `ctx.model` is (a tool taking `RunContext[ToolCall]`): the agent's model.
    model: Model | None = None

    def __post_init__(self) -> None:
        self.commands: dict[str, tuple[Plugin, PluginCommand]] = {}
        self._tools: list[ExternalTool] = []
        self._hooks: set[asyncio.Task[None]] = set()
        for plugin in self.plugins:
            try:
                self._tools.extend([self._external(plugin, tool) for tool in plugin.tools])
            except Exception as exc:  # a signature pydantic-ai cannot describe: the plugin's tools go
                log.error(
                    "plugin %r: its tools cannot be offered: %s: %s", plugin.name, type(exc).__name__, exc
                )
            for command in plugin.commands:
                taken = self.commands.get(command.name)
                if taken is not None:
                    log.warning(
                        "plugin %r: /%s is already plugin %r's; skipped",
                        plugin.name,
                        command.name,
                        taken[0].name,
                    )
                    continue
                self.commands[command.name] = (plugin, command)

    # --- tools (a ToolSource) --------------------------------------------------------------------

    def tools(self) -> list[ExternalTool]:
        return self._tools

    def claims(self, name: str) -> bool:
        return False  # a loaded plugin's tools are always offered

    async def unavailable(self, name: str) -> str | None:
        return None

    def _external(self, plugin: Plugin, tool: PluginTool) -> ExternalTool:
        schema = Tool(tool.function, name=f"{plugin.name}_{tool.name}")
        function_schema = schema.function_schema
        model = self.model or FunctionModel(_no_model)

        async def call(args: dict[str, Any], context: ToolCall) -> ToolAnswer:
            try:
                validated = function_schema.validator.validate_python(args)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in error['loc']) or 'arguments'}: {error['msg']}"
                    for error in exc.errors()
                )
                return ToolAnswer(f"invalid arguments: {problems}. Fix them and call again.", retry=True)
            ctx = RunContext(deps=context, model=model, usage=RunUsage())
            return ToolAnswer(result_text(await function_schema.call(validated, ctx)))

        return ExternalTool(
            definition=schema.tool_def,
            call=call,
            rerun_safe=tool.rerun_safe,
            source=f"plugin '{plugin.name}'",
            timeout_s=self.timeout_s,
        )

    # --- commands ------------------------------------------------------------------------------

    async def run_command(self, name: str, call: CommandCall) -> str | Reply:
        plugin, command = self.commands[name]
        try:
            async with asyncio.timeout(self.timeout_s):
                answer = await command.function(call)
                return answer if isinstance(answer, Reply) else str(answer)
        except TimeoutError:
            log.error("plugin %r: /%s did not answer within %g s", plugin.name, name, self.timeout_s)
            return f"/{name} failed ({plugin.name}): no answer within {self.timeout_s:g} s"
        except Exception as exc:
            log.error(
                "plugin %r: /%s failed: %s: %s", plugin.name, name, type(exc).__name__, exc, exc_info=True
            )
            return f"/{name} failed ({plugin.name}): {type(exc).__name__}"

    # --- hooks ---------------------------------------------------------------------------------

    def message_received(self, message: InboundMessage) -> None:
        for plugin in self.plugins:
            for message_hook in plugin.message_hooks:
                self._spawn(plugin, "on_message", message_hook, message)

    def event_received(self, event: InboundEvent) -> None:
        for plugin in self.plugins:
            for event_hook in plugin.event_hooks:
                self._spawn(plugin, "on_event", event_hook, event)

    def delivery_observer(self, result: DeliveryResult, conversation: str, origin: str) -> None:
        """The outbox's observer: each item this instance finished, to the delivery hooks."""
        if any(plugin.delivery_hooks for plugin in self.plugins):
            self.delivery_finished(
                Delivery(result.item_id, conversation, origin, result.delivered, result.code, result.reason)
            )

    def delivery_finished(self, delivery: Delivery) -> None:
        for plugin in self.plugins:
            for delivery_hook in plugin.delivery_hooks:
                self._spawn(plugin, "on_delivery", delivery_hook, delivery)

    def _spawn(self, plugin: Plugin, hook: str, function: Any, argument: Any) -> None:
        async def isolated() -> None:
            try:
                async with asyncio.timeout(self.timeout_s):
                    work: Awaitable[None] = function(argument)
                    await work
            except TimeoutError:
                log.error("plugin %r: %s hook did not finish within %g s", plugin.name, hook, self.timeout_s)
            except Exception as exc:
                log.error(
                    "plugin %r: %s hook failed: %s: %s",
                    plugin.name,
                    hook,
                    type(exc).__name__,
                    exc,
                    exc_info=True,
                )

        task = asyncio.create_task(isolated(), name=f"plugin-{plugin.name}-{hook}")
        self._hooks.add(task)
        task.add_done_callback(self._hooks.discard)

    async def stop(self) -> None:
        """Let hooks still running finish (briefly), then cancel the rest."""
        if not self._hooks:
            return
        _, late = await asyncio.wait(set(self._hooks), timeout=STOP_WAIT_S)
        for task in late:
            task.cancel()
        for task in late:
            with contextlib.suppress(asyncio.CancelledError):
                await task
