"""The plugin API: what a Herald plugin is and what it can add.

A plugin is a Python package that exposes a `Plugin` object as an entry point in the group
`herald.plugins`:

    # pyproject.toml of the plugin's package
    [project.entry-points."herald.plugins"]
    dice = "herald_dice:plugin"

    # herald_dice/__init__.py
    from herald.plugin import Plugin

    plugin = Plugin("dice", "Dice and random picks")

    @plugin.tool
    def roll_dice(sides: int = 6, count: int = 1) -> str:
        \"\"\"Roll dice and return the faces.

        Args:
            sides: faces on each die
            count: how many dice
        \"\"\"
        ...

    @plugin.command("roll", "/roll 2d6 — roll dice")
    async def roll(call: CommandCall) -> str: ...

    @plugin.on_message
    async def seen(message: InboundMessage) -> None: ...

Tools are plain typed functions (sync or async): the model sees their name, docstring and
parameters (pydantic-ai's function schema), and Herald validates the arguments before the call.
A tool that may not run twice (it pays, posts, books) says `@plugin.tool(rerun_safe=False)`: after
a crash in the middle of such a call, the model is told the outcome is unknown instead of Herald
calling it again. Everything a plugin adds runs isolated: an exception or a timeout is logged with
the plugin's name and answered with an error, never taking a turn or Herald down.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, overload

from herald.core.events import InboundMessage
from herald.core.target import Target

ToolFunction = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class PluginTool:
    function: ToolFunction
    name: str
    rerun_safe: bool


@dataclass(frozen=True, slots=True)
class CommandCall:
    """One use of a plugin's chat command: `/name args` in `target`."""

    args: str
    target: Target
    author_id: str | None


CommandFunction = Callable[[CommandCall], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class PluginCommand:
    function: CommandFunction
    name: str
    help: str


class DeliveryOutcome(Protocol):
    """What a delivery hook is told about one outbox item that finished."""

    @property
    def item_id(self) -> str: ...
    @property
    def delivered(self) -> bool: ...
    @property
    def code(self) -> int | None: ...
    @property
    def reason(self) -> str | None: ...


MessageHook = Callable[[InboundMessage], Awaitable[None]]
DeliveryHook = Callable[[DeliveryOutcome], Awaitable[None]]


@dataclass
class Plugin:
    name: str
    description: str = ""
    tools: list[PluginTool] = field(default_factory=list)
    commands: list[PluginCommand] = field(default_factory=list)
    message_hooks: list[MessageHook] = field(default_factory=list)
    delivery_hooks: list[DeliveryHook] = field(default_factory=list)

    @overload
    def tool(self, function: ToolFunction, /) -> ToolFunction: ...
    @overload
    def tool(
        self, /, *, name: str | None = ..., rerun_safe: bool = ...
    ) -> Callable[[ToolFunction], ToolFunction]: ...
    def tool(
        self, function: ToolFunction | None = None, /, *, name: str | None = None, rerun_safe: bool = True
    ) -> ToolFunction | Callable[[ToolFunction], ToolFunction]:
        """Add a tool; the model sees it as `<plugin>_<name>` (name: the function's)."""

        def add(function: ToolFunction) -> ToolFunction:
            self.tools.append(PluginTool(function, name or function.__name__, rerun_safe))
            return function

        return add(function) if function is not None else add

    def command(self, name: str, help: str = "") -> Callable[[CommandFunction], CommandFunction]:
        """Add a chat command `/name`; its reply is the coroutine's text."""

        def add(function: CommandFunction) -> CommandFunction:
            self.commands.append(PluginCommand(function, name.lower().lstrip("/"), help or f"/{name}"))
            return function

        return add

    def on_message(self, hook: MessageHook) -> MessageHook:
        """Called with every inbound message Herald stored (after it is stored; it cannot veto)."""
        self.message_hooks.append(hook)
        return hook

    def on_delivery(self, hook: DeliveryHook) -> DeliveryHook:
        """Called with every outbox item that finished: delivered, or not and why."""
        self.delivery_hooks.append(hook)
        return hook
