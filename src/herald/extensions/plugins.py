"""Installed plugins (entry points in group `herald.plugins`): found, loaded if config allows,
and run isolated (a plugin that raises or hangs is logged by name and skipped)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic_ai import Tool

from herald.config import PluginsConfig
from herald.core.events import InboundMessage
from herald.extensions.tools import ExternalTool
from herald.plugin import CommandCall, DeliveryOutcome, Plugin, PluginCommand, PluginTool

log = logging.getLogger(__name__)

GROUP = "herald.plugins"


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
                entry.plugin = loaded
            except Exception as exc:
                entry.error = f"{type(exc).__name__}: {exc}"
                log.error("plugin %r could not be loaded (%s): %s", point.name, point.value, entry.error)
        found.append(entry)
    return found


def _package(point: EntryPoint) -> str:
    return point.dist.name if point.dist is not None else point.value.partition(":")[0]


@dataclass
class Plugins:
    """The loaded plugins' tools, commands and hooks, each wrapped so a failure stays the plugin's."""

    plugins: list[Plugin] = field(default_factory=list)
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        self._tools = [self._external(p, t) for p in self.plugins for t in p.tools]
        self.commands: dict[str, tuple[Plugin, PluginCommand]] = {}
        for plugin in self.plugins:
            for command in plugin.commands:
                self.commands.setdefault(command.name, (plugin, command))

    def tools(self) -> list[ExternalTool]:
        return list(self._tools)

    async def run_command(self, name: str, call: CommandCall) -> str:
        plugin, command = self.commands[name]
        try:
            async with asyncio.timeout(self.timeout_s):
                return await command.function(call)
        except Exception as exc:
            log.error("plugin %r: /%s failed: %s: %s", plugin.name, name, type(exc).__name__, exc)
            return f"/{name} failed ({plugin.name}): {type(exc).__name__}"

    def message_received(self, message: InboundMessage) -> None:
        for plugin in self.plugins:
            for message_hook in plugin.message_hooks:
                self._spawn(plugin, "on_message", message_hook(message))

    def delivery_finished(self, outcome: DeliveryOutcome) -> None:
        for plugin in self.plugins:
            for delivery_hook in plugin.delivery_hooks:
                self._spawn(plugin, "on_delivery", delivery_hook(outcome))

    def _spawn(self, plugin: Plugin, hook: str, work: Any) -> None:
        async def isolated() -> None:
            try:
                async with asyncio.timeout(self.timeout_s):
                    await work
            except Exception as exc:
                log.error("plugin %r: %s hook failed: %s: %s", plugin.name, hook, type(exc).__name__, exc)

        task = asyncio.create_task(isolated(), name=f"plugin-{plugin.name}-{hook}")
        _running.add(task)
        task.add_done_callback(_running.discard)

    def _external(self, plugin: Plugin, tool: PluginTool) -> ExternalTool:
        schema = Tool(tool.function, takes_ctx=False, name=f"{plugin.name}_{tool.name}")
        function = tool.function

        async def call(args: dict[str, Any]) -> str:
            validated = schema.function_schema.validator.validate_python(args)
            if inspect.iscoroutinefunction(function):
                result = await function(**validated)
            else:
                result = await asyncio.to_thread(function, **validated)
            return result if isinstance(result, str) else repr(result)

        return ExternalTool(
            definition=schema.tool_def,
            call=call,
            rerun_safe=tool.rerun_safe,
            source=f"plugin '{plugin.name}'",
            timeout_s=self.timeout_s,
        )


_running: set[asyncio.Task[None]] = set()  # hooks in flight (a task needs a reference to live)
