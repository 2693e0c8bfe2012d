"""The agent's tools, as an OpenAI-compatible model sees them, and how each one runs.

Each call starts in two phases: `begin` runs in call order (a send enqueues its outbox item
there, so several sends in one model response are delivered in call order), and the returned
awaitable finishes concurrently with the other calls (awaiting a receipt, touching the store).

Every call is keyed `turn:<turn id>:<step>:<tool call id>`: the outbox idempotency key of a
send and the creation key of a job. A resumed turn re-running a call therefore gets the first
run's outcome instead of acting twice.

External tools (MCP servers, plugins) get the key too (an MCP call carries it in `_meta`, a
plugin tool reads it from its `ToolCall`), but Herald cannot tell whether they honour it. Those
marked rerun-safe are simply run again; for the others the runner stores an "outcome unknown"
result before the call and replaces it with the real one after, so a crash in between never calls
them twice (`is_rerun_safe`).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_ai.messages import ToolCallPart, ToolReturnPart
from pydantic_ai.tools import ToolDefinition

from herald.agent.approvals import BUTTON_PREFIX
from herald.agent.clean import storable
from herald.agent.settings import AgentSettings
from herald.core.clock import Clock
from herald.core.events import Attachment
from herald.core.jobs import Forecast, JobBook, JobError, deliverability, describe_job
from herald.core.schedule import ScheduleError, cron_schedule, once_schedule
from herald.core.segments import (
    KEYBOARD_ROW_BUTTONS,
    KEYBOARD_ROWS,
    Button,
    ButtonKind,
    Keyboard,
    Markdown,
    Media,
    MediaKind,
    Segment,
    Text,
)
from herald.core.target import Target
from herald.delivery.receipts import Receipt
from herald.extensions.tools import ExternalTools
from herald.plugin import ToolCall
from herald.store.batch import Write

ToolResult = ToolReturnPart


class Sender(Protocol):
    """What the agent needs from the outbox."""

    async def enqueue(
        self,
        target: Target,
        segments: list[Segment],
        *,
        origin: str,
        trigger_id: str | None = None,
        idempotency_key: str | None = None,
        also: Write | None = None,
        expires_at: datetime | None = None,
    ) -> Receipt: ...


class ToolGuard(Protocol):
    """Who may call which tool, decided outside the model (the gate)."""

    def tool_refusal(self, tool: str, turn_id: int, target: Target, author_id: str | None) -> str | None:
        """The result the model is shown instead of running the call, or None to run it."""
        ...

    def hides(self, tool: str, turn_id: int, target: Target, author_id: str | None) -> bool: ...

    def turn_admin(self, turn_id: int, target: Target, author_id: str | None) -> bool: ...


@dataclass(frozen=True, slots=True)
class ToolContext:
    turn_id: int
    target: Target
    author_id: str | None
    trigger_id: str | None
    timezone: str
    tools: frozenset[str] | None = None  # what this turn's policy offers; None: every tool
    attachments: tuple[Attachment, ...] = ()  # what the turn's message carried
    approve_tools: frozenset[str] = frozenset()  # calls that wait for a person's approval
    approver: str = "user"
    approval_timeout_s: float = 600.0


class MediaArg(BaseModel):
    """One picture, video, voice clip or file to send, by URL or by the path of a local file."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["image", "video", "voice", "file"] = Field(
        description="image (png/jpg), video (mp4), voice (any audio; sent as a voice message), or file"
    )
    url: str | None = Field(default=None, description="http(s) URL of the media (give url or path).")
    path: str | None = Field(
        default=None, description="Path of a local file a tool produced (give url or path)."
    )
    name: str | None = Field(default=None, description="File name the user sees (files).")


class ButtonArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1, max_length=40, description="What the button says.")
    kind: Literal["callback", "link", "command"] = Field(
        default="callback",
        description=(
            "callback: a click comes back to you as a new message saying which button was clicked; "
            "link: opens `data`, an http(s) URL; command: puts `data` in the user's input box."
        ),
    )
    data: str | None = Field(
        default=None, max_length=200, description="What a click carries (callback/command) or the URL (link)."
    )


MAX_BUTTONS = KEYBOARD_ROWS * KEYBOARD_ROW_BUTTONS


class SendMessageArgs(BaseModel):
    """Send a message to the user (or group) of the current conversation, right now.

    Returns the real outcome: delivered, or not delivered with the platform's reason.
    Use it to send several separate messages in one turn; your final answer is sent too.
    `media` sends pictures, videos, voice clips and files, each as its own message after the
    text; QQ limits: pictures 20 MB, videos 30 MB, voice 20 MB, files 200 MB.
    `buttons` (at most 25) appear under the message; where they cannot be shown the user gets
    numbered choices and answers with /choose N, which reaches you like a click.
    """

    model_config = ConfigDict(extra="forbid")

    text: str = Field(default="", description="The message text (may be empty when sending media).")
    image_url: str | None = Field(default=None, description="Optional http(s) URL of an image to send.")
    markdown: bool = Field(default=False, description="Render the text as markdown.")
    media: list[MediaArg] = Field(default_factory=list, description="Media to send after the text.")
    buttons: list[ButtonArgs] | None = Field(
        default=None, max_length=MAX_BUTTONS, description="Optional buttons under the message."
    )


def keyboard_of(buttons: list[ButtonArgs]) -> Keyboard | str:
    """The keyboard for the model's buttons, or why they cannot be sent (for the model)."""
    made: list[Button] = []
    for number, button in enumerate(buttons, 1):
        data = button.data if button.data is not None else button.label
        if data.startswith(BUTTON_PREFIX):
            return f"button {number}: data may not start with {BUTTON_PREFIX!r} (reserved for Herald)"
        if button.kind == "link" and not data.startswith(("http://", "https://")):
            return f"button {number}: a link button's data must be an http(s) URL"
        made.append(Button(button.label, ButtonKind(button.kind), data))
    per_row = 3 if len(made) <= 3 * KEYBOARD_ROWS else KEYBOARD_ROW_BUTTONS
    return Keyboard.of(made, per_row)


class FutureTaskArgs(BaseModel):
    """Schedule work for your future self in this conversation.

    action=create needs `note` and either `cron_expression` (recurring, 5 fields, e.g.
    "* * * * *" every minute, "0 9 * * *" daily at 09:00) or `run_at` (one time, ISO 8601).
    When a task fires you are woken in this conversation with its note, and what you send
    reaches the user. The result of create says how many firings can actually be delivered and
    by which route; tell the user, and propose a schedule that works if it falls short.
    action=list shows tasks; edit and delete need `job_id`.
    """

    model_config = ConfigDict(extra="forbid")

    action: Literal["create", "list", "edit", "delete"]
    name: str | None = Field(default=None, description="Short name of the task.")
    cron_expression: str | None = Field(default=None, description="Recurring schedule, 5-field cron.")
    run_at: str | None = Field(default=None, description="One-time run, ISO 8601 (local time if no offset).")
    note: str | None = Field(default=None, description="What to do when it fires (read by your future self).")
    job_id: str | None = Field(default=None, description="The task id, for edit and delete.")


def _definition(name: str, model: type[BaseModel]) -> ToolDefinition:
    schema = model.model_json_schema()
    schema.pop("title", None)
    description = " ".join((model.__doc__ or "").split())
    schema.pop("description", None)
    return ToolDefinition(name=name, parameters_json_schema=schema, description=description)


SEND_MESSAGE = "send_message_to_user"
FUTURE_TASK = "future_task"
TOOL_DEFINITIONS = [_definition(SEND_MESSAGE, SendMessageArgs), _definition(FUTURE_TASK, FutureTaskArgs)]

Finisher = Callable[[], Awaitable[ToolResult]]


OUTCOME_UNKNOWN = (
    "outcome unknown: Herald stopped while this tool ran; it was not run again, because it is not "
    "safe to run twice. It may or may not have done its work: tell the user so."
)


class Toolbox:
    def __init__(
        self,
        sender: Sender,
        jobs: JobBook,
        clock: Clock,
        external: ExternalTools | None = None,
        settings: AgentSettings | None = None,
        guard: ToolGuard | None = None,
        forecast: Forecast | None = None,
        media_dirs: list[str] | None = None,
    ) -> None:
        self.sender = sender
        # Resolved once: a path is sent only if it really lies inside one of them.
        self.media_dirs = [os.path.realpath(d) for d in media_dirs or []]
        self.forecast = forecast
        self.jobs = jobs
        self.clock = clock
        self.external = external or ExternalTools()
        self.settings = settings
        self.guard = guard

    @property
    def definitions(self) -> list[ToolDefinition]:
        """The built-in tools and every external tool offered right now."""
        builtin = {tool.name for tool in TOOL_DEFINITIONS}
        extra = [d for d in self.external.definitions() if d.name not in builtin]
        return [*TOOL_DEFINITIONS, *extra]

    @property
    def disabled(self) -> frozenset[str]:
        return self.settings.disabled_tools if self.settings is not None else frozenset()

    @property
    def offered(self) -> list[ToolDefinition]:
        """The tools the model is offered: all of them but those an operator disabled."""
        return self.offered_to(None)

    def offered_to(self, tools: frozenset[str] | None) -> list[ToolDefinition]:
        """What a turn whose policy offers `tools` (None: all) gets, less what an operator disabled."""
        disabled = self.disabled
        return [d for d in self.definitions if d.name not in disabled and (tools is None or d.name in tools)]

    def offered_in(self, context: ToolContext) -> list[ToolDefinition]:
        """The tools offered in one turn: what its policy offers, less what an operator disabled,
        and admin-only tools left out for everyone else."""
        offered = self.offered_to(context.tools)
        guard = self.guard
        if guard is None:
            return offered
        return [
            d for d in offered if not guard.hides(d.name, context.turn_id, context.target, context.author_id)
        ]

    def _creator_scope(self, context: ToolContext) -> str | None:
        """Whose jobs the call may edit or delete: an admin's may touch anyone's."""
        guard = self.guard
        if guard is not None and guard.turn_admin(context.turn_id, context.target, context.author_id):
            return None
        return context.author_id

    def is_rerun_safe(self, call: ToolCallPart) -> bool:
        """May this call run again after a crash in the middle of it? Built-ins are keyed (above)."""
        if call.tool_name in (SEND_MESSAGE, FUTURE_TASK):
            return True
        return self.external.rerun_safe(call.tool_name)

    async def begin(self, call: ToolCallPart, context: ToolContext, key: str) -> Finisher:
        """Start one call (in call order); the result is the awaitable that finishes it."""
        if self.guard is not None:
            refusal = self.guard.tool_refusal(
                call.tool_name, context.turn_id, context.target, context.author_id
            )
            if refusal is not None:
                return _ready(_return(call, refusal, failed=True))
        if call.tool_name in self.disabled:
            # A model may still call it: it saw the tool in an earlier turn of the conversation.
            return _ready(_retry(call, f"tool {call.tool_name!r} is disabled by the operator; do without it"))
        if context.tools is not None and call.tool_name not in context.tools:
            return _ready(_retry(call, f"tool {call.tool_name!r} is not available here; do without it"))
        try:
            if call.tool_name == SEND_MESSAGE:
                send_args = SendMessageArgs.model_validate(call.args_as_dict())
                return await self._begin_send(call, context, key, send_args)
            if call.tool_name == FUTURE_TASK:
                task_args = FutureTaskArgs.model_validate(call.args_as_dict())
                return lambda: self._future_task(call, context, key, task_args)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'arguments'}: {error['msg']}"
                for error in exc.errors()
            )
            return _ready(_retry(call, f"invalid arguments: {problems}. Fix them and call again."))
        except ValueError as exc:  # args that are not JSON
            return _ready(_retry(call, f"arguments are not valid JSON: {exc}"))
        if not self.external.claims(call.tool_name):
            available = ", ".join(d.name for d in self.offered)
            return _ready(_retry(call, f"unknown tool {call.tool_name!r}; available: {available}"))
        try:
            args = call.args_as_dict()
        except ValueError as exc:
            return _ready(_retry(call, f"arguments are not valid JSON: {exc}"))
        where = ToolCall(
            target=context.target,
            author_id=context.author_id,
            turn_id=context.turn_id,
            key=key,
            attachments=context.attachments,
            sender=self._plugin_sender(context, key),
        )

        async def finish() -> ToolResult:
            answer = await self.external.call(call.tool_name, args, where)
            # Outside text, stored with the turn: made storable like the model's own.
            content = storable(answer.text)
            if answer.retry:
                return _retry(call, content)
            return _return(call, content, failed=answer.failed)

        return finish

    async def _begin_send(
        self, call: ToolCallPart, context: ToolContext, key: str, args: SendMessageArgs
    ) -> Finisher:
        segments: list[Segment] = []
        if args.text.strip():
            segments.append(Markdown(args.text) if args.markdown else Text(args.text))
        if args.buttons:
            keyboard = keyboard_of(args.buttons)
            if isinstance(keyboard, str):
                return _ready(_retry(call, keyboard))
            segments.append(keyboard)
        if args.image_url:
            if not args.image_url.startswith(("http://", "https://")):
                return _ready(_retry(call, "image_url must be an http(s) URL"))
            segments.append(Media(MediaKind.IMAGE, url=args.image_url))
        for number, item in enumerate(args.media, 1):
            media = self._media(item)
            if isinstance(media, str):
                return _ready(_retry(call, f"media {number}: {media}"))
            segments.append(media)
        if not segments:
            return _ready(_retry(call, "nothing to send: text is empty and there is no media"))
        receipt = await self.sender.enqueue(
            context.target, segments, origin="agent_tool", trigger_id=context.trigger_id, idempotency_key=key
        )

        async def finish() -> ToolResult:
            result = await receipt
            return _return(call, result.describe())

        return finish

    def _plugin_sender(self, context: ToolContext, key: str) -> Callable[[Sequence[Segment]], Awaitable[str]]:
        """What a plugin tool's `ToolCall.send` does: one outbox item per call of it, keyed by the
        tool call's key and the send's number, so a resumed turn does not send it again."""
        sent = 0

        async def send(segments: Sequence[Segment]) -> str:
            nonlocal sent
            sent += 1
            receipt = await self.sender.enqueue(
                context.target,
                list(segments),
                origin="plugin",
                trigger_id=context.trigger_id,
                idempotency_key=f"{key}:send:{sent}",
            )
            return (await receipt).describe()

        return send

    def _media(self, item: MediaArg) -> Media | str:
        """The segment for one media argument, or what is wrong with it (said to the model)."""
        kind = MediaKind(item.kind)
        if (item.url is None) == (item.path is None):
            return "give exactly one of url or path"
        if item.url is not None:
            if not item.url.startswith(("http://", "https://")):
                return "url must be an http(s) URL"
            return Media(kind, url=item.url, name=item.name)
        assert item.path is not None
        if not self.media_dirs:
            return "sending local files is not enabled here ([agent] media_dirs is empty); give a url"
        real = os.path.realpath(item.path)
        if not any(real == d or real.startswith(d + os.sep) for d in self.media_dirs):
            return f"{item.path} is outside the folders files may be sent from: {', '.join(self.media_dirs)}"
        if not os.path.isfile(real):
            return f"{item.path} is not an existing file"
        return Media(kind, path=real, name=item.name or os.path.basename(real))

    async def _future_task(
        self, call: ToolCallPart, context: ToolContext, key: str, args: FutureTaskArgs
    ) -> ToolResult:
        conversation = context.target.key
        try:
            if args.action == "list":
                jobs = await self.jobs.list_jobs(conversation)
                if not jobs:
                    return _return(call, "no scheduled tasks in this conversation")
                return _return(call, "\n".join(describe_job(job, context.timezone) for job in jobs))
            if args.action == "create":
                if (args.cron_expression is None) == (args.run_at is None):
                    return _retry(
                        call, "create needs exactly one of cron_expression (recurring) or run_at (once)"
                    )
                if not (args.note or args.name):
                    return _retry(call, "create needs a note saying what to do when the task fires")
                schedule = (
                    cron_schedule(args.cron_expression, context.timezone)
                    if args.cron_expression is not None
                    else once_schedule(args.run_at or "", context.timezone, self.clock.now())
                )
                job = await self.jobs.create(
                    conversation=conversation,
                    creator_id=context.author_id,
                    name=args.name or (args.note or "")[:40],
                    schedule=schedule,
                    note=args.note or args.name or "",
                    created_key=key,
                )
                created = "created: " + describe_job(job, context.timezone)
                if self.forecast is not None:
                    # Held: this turn's own answer goes before the first firing.
                    created += "\ndelivery: " + await deliverability(job, self.forecast, held=1)
                return _return(call, created)
            if not args.job_id:
                return _retry(call, f"{args.action} needs job_id (use action=list to find it)")
            if args.action == "delete":
                job = await self.jobs.end(
                    args.job_id,
                    reason="deleted",
                    conversation=conversation,
                    creator_id=self._creator_scope(context),
                )
                return _return(call, f"deleted task {job.id} ({job.name})")
            new_schedule = None
            if args.cron_expression is not None:
                new_schedule = cron_schedule(args.cron_expression, context.timezone)
            elif args.run_at is not None:
                new_schedule = once_schedule(args.run_at, context.timezone, self.clock.now())
            job = await self.jobs.edit(
                args.job_id,
                conversation=conversation,
                creator_id=self._creator_scope(context),
                name=args.name,
                schedule=new_schedule,
                note=args.note,
            )
            return _return(call, "updated: " + describe_job(job, context.timezone))
        except (ScheduleError, JobError) as exc:
            return _return(call, f"error: {exc}")


def _return(call: ToolCallPart, content: str, *, failed: bool = False) -> ToolReturnPart:
    return ToolReturnPart(
        tool_name=call.tool_name,
        content=content,
        tool_call_id=call.tool_call_id,
        outcome="failed" if failed else "success",
    )


def refused(call: ToolCallPart, why: str) -> ToolReturnPart:
    """The result of a call that did not run (denied, timed out)."""
    return _return(call, why, failed=True)


def outcome_unknown(call: ToolCallPart) -> ToolReturnPart:
    """The result stored before a call that is not safe to run twice; the real one replaces it."""
    return _return(call, OUTCOME_UNKNOWN, failed=True)


def _retry(call: ToolCallPart, message: str) -> ToolReturnPart:
    """A result that asks the model to call again with better arguments."""
    return ToolReturnPart(
        tool_name=call.tool_name, content=message, tool_call_id=call.tool_call_id, outcome="retried"
    )


def _ready(result: ToolResult) -> Finisher:
    async def finish() -> ToolResult:
        return result

    return finish
