"""The plugin API: what a Herald plugin is and what it can add.

A plugin is a Python package that exposes a `Plugin` object as an entry point in the group
`herald.plugins` (the entry point's name and the plugin's name are the same):

    # pyproject.toml of the plugin's package
    [project.entry-points."herald.plugins"]
    dice = "herald_dice:plugin"

    # herald_dice/__init__.py
    from herald.plugin import CommandCall, Delivery, Plugin

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

    @plugin.on_delivery
    async def finished(delivery: Delivery) -> None: ...

    @plugin.on_event
    async def happened(event: InboundEvent) -> None:
        if isinstance(event, MemberEvent) and event.change is MemberChange.JOINED: ...

Tools are plain typed functions (sync or async): the model sees `<plugin>_<function>`, the
docstring and the parameters (pydantic-ai's function schema), and Herald validates the arguments
before the call. A tool that needs to know where it runs takes `ctx: RunContext[ToolCall]` as its
first parameter (pydantic-ai's convention): `ctx.deps` is the `ToolCall`, with the conversation and
a key unique to the call that stays the same if a resumed turn calls it again.

A tool that may not run twice (it pays, posts, books) says `@plugin.tool(rerun_safe=False)`: after
a crash in the middle of such a call, the model is told the outcome is unknown instead of Herald
calling it again. Everything a plugin adds runs isolated: an exception or a timeout is logged with
the plugin's name and answered with an error, never taking a turn or Herald down.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from herald.core.events import (
    Attachment,
    ContactRequest,
    InboundEvent,
    InboundMessage,
    Interaction,
    MemberChange,
    MemberEvent,
    MessageRecalled,
    Reaction,
    RelationEvent,
    RelationKind,
    RequestKind,
)
from herald.core.segments import Button, ButtonKind, Keyboard, Markdown, Media, MediaKind, Segment, Text
from herald.core.target import Target

__all__ = [
    "Attachment",
    "Button",
    "ButtonKind",
    "CommandCall",
    "ContactRequest",
    "Delivery",
    "InboundEvent",
    "InboundMessage",
    "Interaction",
    "Markdown",
    "Media",
    "MediaKind",
    "MemberChange",
    "MemberEvent",
    "MessageRecalled",
    "Plugin",
    "PluginCommand",
    "PluginTool",
    "Reaction",
    "RelationEvent",
    "RelationKind",
    "Reply",
    "RequestKind",
    "Text",
    "ToolCall",
]

# Sends segments to the conversation a tool runs in and returns the outcome, as the agent's own
# send tool reports it ("delivered", or "not delivered: <why>").
SendFunction = Callable[[Sequence[Segment]], Awaitable[str]]

ToolFunction = TypeVar("ToolFunction", bound=Callable[..., Any])

# A plugin's name prefixes its tools' names, which model APIs restrict to these characters.
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
COMMAND_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """Where a plugin tool was called (`ctx.deps` of a tool taking `RunContext[ToolCall]`)."""

    target: Target
    author_id: str | None  # the user whose message started the turn (None for some jobs)
    turn_id: int
    # `turn:<turn id>:<step>:<call id>`: unique per call, the same if a resumed turn calls again,
    # so a tool can use it as an idempotency key with whatever it talks to.
    key: str
    # What the message that started the turn carried: pictures, files, voice, video (type, size,
    # name and the platform's URL, which the tool may fetch).
    attachments: tuple[Attachment, ...] = ()
    sender: SendFunction | None = field(default=None, repr=False, compare=False)

    @property
    def conversation(self) -> str:
        return self.target.key

    async def send(self, *segments: Segment) -> str:
        """Send to this conversation now, through the outbox (durable, retried), and wait for the
        outcome. Media may be given by URL, by bytes, or by the path of a file the tool made:

            await ctx.deps.send(Media(MediaKind.IMAGE, path="/srv/charts/q3.png"), Text("Q3"))

        A resumed turn calling the tool again sends nothing twice: each send is keyed by the
        call's key and its order within the call."""
        if self.sender is None:
            raise RuntimeError("this ToolCall cannot send (it was made outside a turn)")
        if not segments:
            raise ValueError("send needs at least one segment")
        return await self.sender(segments)


@dataclass(frozen=True, slots=True)
class PluginTool:
    function: Callable[..., Any]
    name: str
    rerun_safe: bool


@dataclass(frozen=True, slots=True)
class CommandCall:
    """One use of a plugin's chat command: `/name args` in `target`."""

    args: str
    target: Target
    author_id: str | None


@dataclass(frozen=True, slots=True)
class Reply:
    """A command's reply with buttons under it. A click on a callback button reaches the agent as
    a new turn; where buttons cannot be shown they become numbered choices (`/choose N`)."""

    text: str
    buttons: tuple[Button, ...] = ()
    per_row: int = 3

    def segments(self) -> list[Segment]:
        found: list[Segment] = [Text(self.text)] if self.text.strip() or not self.buttons else []
        if self.buttons:
            found.append(Keyboard.of(self.buttons, self.per_row))
        return found


CommandFunction = Callable[[CommandCall], Awaitable[str | Reply]]


@dataclass(frozen=True, slots=True)
class PluginCommand:
    function: CommandFunction
    name: str
    help: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """One outbox item this Herald instance finished: delivered, or not and why."""

    item_id: str
    conversation: str  # e.g. `group:<group openid>`
    origin: str  # agent_tool | agent_reply | agent_error | command | job | notice
    delivered: bool
    code: int | None  # the platform's error code, when it refused
    reason: str | None  # why it was not delivered

    def describe(self) -> str:
        if self.delivered:
            return "delivered"
        detail = f" (code {self.code})" if self.code is not None else ""
        return f"not delivered: {self.reason or 'unknown reason'}{detail}"


MessageHook = Callable[[InboundMessage], Awaitable[None]]
DeliveryHook = Callable[[Delivery], Awaitable[None]]
EventHook = Callable[[InboundEvent], Awaitable[None]]


@dataclass
class Plugin:
    name: str
    description: str = ""
    tools: list[PluginTool] = field(default_factory=list)
    commands: list[PluginCommand] = field(default_factory=list)
    message_hooks: list[MessageHook] = field(default_factory=list)
    delivery_hooks: list[DeliveryHook] = field(default_factory=list)
    event_hooks: list[EventHook] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.name):
            raise ValueError(
                f"plugin name {self.name!r}: use a letter, then letters, digits, '-' or '_' "
                "(at most 32): it prefixes the plugin's tool names"
            )

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
        command = name.lower().lstrip("/")
        if not COMMAND_NAME.fullmatch(command):
            raise ValueError(f"command name {name!r}: use lowercase letters, digits, '-' or '_'")

        def add(function: CommandFunction) -> CommandFunction:
            self.commands.append(PluginCommand(function, command, help or f"/{command}"))
            return function

        return add

    def on_message(self, hook: MessageHook) -> MessageHook:
        """Called with every inbound message Herald stored (after it is stored; it cannot veto)."""
        self.message_hooks.append(hook)
        return hook

    def on_event(self, hook: EventHook) -> EventHook:
        """Called with every event the platform delivered, as a core event: messages (also those
        no turn answers, e.g. a group message that does not @ the bot), relation changes
        (`RelationEvent`), members joining or leaving a group (`MemberEvent`), recalled guild
        messages (`MessageRecalled`), guild reactions (`Reaction`), button clicks (`Interaction`),
        friend requests and group invitations to a OneBot account (`ContactRequest`).
        Called once Herald has handled the event; it cannot veto or answer it."""
        self.event_hooks.append(hook)
        return hook

    def on_delivery(self, hook: DeliveryHook) -> DeliveryHook:
        """Called with every outbox item this instance finished: delivered, or not and why."""
        self.delivery_hooks.append(hook)
        return hook
