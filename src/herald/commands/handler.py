"""Each command is a small coroutine returning the reply text. Commands run inside the
conversation's turn order and are idempotent per turn (a resumed command does not create a
second job: `/every` creates with the key `turn:<id>:every`)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from herald import __version__
from herald.config import HeraldConfig
from herald.core.clock import Clock
from herald.core.history import ConversationHistory
from herald.core.jobs import Forecast, JobBook, JobError, deliverability, describe_job
from herald.core.language import Language, say
from herald.core.schedule import ScheduleError, format_interval, interval_schedule, parse_interval
from herald.core.target import Scene, Target
from herald.extensions import Plugins
from herald.plugin import CommandCall, Reply

HELP_ZH = """可用命令：
/help — 显示本帮助
/reset — 清空对话记忆
/jobs — 列出定时任务
/cancel <id> — 取消定时任务
/every <间隔> <文本> — 定时发送文本，如 /every 1m 心跳
/status — 运行状态
其他消息交给 AI 助手回答。"""
HELP_EN = """Commands:
/help — this help
/reset — clear the conversation history
/jobs — list scheduled jobs
/cancel <id> — cancel a job
/every <interval> <text> — send text every interval, e.g. /every 1m heartbeat
/status — status
Anything else goes to the assistant."""
HELP = """可用命令 / commands:
/help — 显示本帮助 (this help)
/reset — 清空对话记忆 (clear the conversation history)
/jobs — 列出定时任务 (list scheduled jobs)
/cancel <id> — 取消定时任务 (cancel a job)
/every <间隔> <文本> — 定时发送文本, 如 /every 1m 心跳 (send text every interval)
/status — 运行状态 (status)
其他消息交给 AI 助手回答。Anything else goes to the assistant."""


@dataclass(frozen=True, slots=True)
class CommandContext:
    turn_id: int
    target: Target
    author_id: str | None
    admin: bool = False  # decided by the gate: configured admins and the platform's roles
    language: Language = "zh+en"  # of the reply, from the conversation's policy


@dataclass(frozen=True, slots=True)
class StatusInfo:
    model: str
    started_monotonic: float
    model_state: Callable[[], str] = lambda: "ok"  # `ok` or `failing: <cause>`
    # What the platform refuses this bot, learned from its answers: one line each.
    learned: Callable[[], Sequence[str]] = lambda: ()


Handler = Callable[["Commands", CommandContext, str], Awaitable[str]]


def parse_command(text: str, extra: Collection[str] = ()) -> tuple[str, str] | None:
    """`/name args` → (name, args) if `name` is a built-in command or in `extra`, else None."""
    stripped = text.strip()
    if not stripped.startswith("/"):
        return None
    name, _, rest = stripped[1:].partition(" ")
    name = name.lower()
    if name not in COMMANDS and name not in extra:
        return None
    return name, rest.strip()


class Commands:
    def __init__(
        self,
        *,
        jobs: JobBook,
        turns: ConversationHistory,
        clock: Clock,
        config: HeraldConfig,
        status: StatusInfo,
        plugins: Plugins | None = None,
        forecast: Forecast | None = None,
    ) -> None:
        self.forecast = forecast
        self.jobs = jobs
        self.turns = turns
        self.clock = clock
        self.config = config
        self.status_info = status
        self.plugins = plugins or Plugins()

    def parse(self, text: str) -> tuple[str, str] | None:
        """`/name args` → (name, args) for a built-in or plugin command, else None (the agent's)."""
        return parse_command(text, extra=self.plugins.commands)

    def help(self, language: Language = "zh+en") -> str:
        added = [
            command.help for _, command in self.plugins.commands.values() if command.name not in COMMANDS
        ]
        return "\n".join([say(language, HELP_ZH, HELP_EN, HELP), *added])

    async def run(self, context: CommandContext, text: str) -> str | Reply:
        """The reply: text, or (a plugin's) text with buttons."""
        parsed = self.parse(text)
        if parsed is None:
            return self.help(context.language)
        name, args = parsed
        if name in COMMANDS:
            return await COMMANDS[name](self, context, args)
        return await self.plugins.run_command(
            name, CommandCall(args=args, target=context.target, author_id=context.author_id)
        )

    def _creator_scope(self, context: CommandContext) -> str | None:
        # In a private chat the conversation is the user; elsewhere only a job's creator (or an
        # admin) may cancel it.
        return None if context.target.scene is Scene.C2C or context.admin else context.author_id


async def _help(commands: Commands, context: CommandContext, args: str) -> str:
    return commands.help(context.language)


async def _reset(commands: Commands, context: CommandContext, args: str) -> str:
    dropped = await commands.turns.reset(context.target.key)
    both = f"已清空对话记忆 (history cleared: {dropped} turns)."
    return say(
        context.language, f"已清空对话记忆（{dropped} 轮）。", f"History cleared: {dropped} turns.", both
    )


async def _jobs(commands: Commands, context: CommandContext, args: str) -> str:
    jobs = await commands.jobs.list_jobs(context.target.key)
    if not jobs:
        return say(
            context.language, "没有定时任务。", "No scheduled jobs.", "没有定时任务 (no scheduled jobs)."
        )
    timezone = commands.config.agent.timezone
    heading = say(context.language, "定时任务：", "Jobs:", "定时任务 (jobs):")
    return heading + "\n" + "\n".join(describe_job(job, timezone) for job in jobs)


async def _cancel(commands: Commands, context: CommandContext, args: str) -> str:
    job_id = args.split()[0] if args.split() else ""
    if not job_id:
        return say(
            context.language,
            "用法：/cancel <id>（/jobs 查看 id）",
            "Usage: /cancel <id> (see /jobs for ids)",
            "用法 (usage): /cancel <id>  — /jobs 查看 id",
        )
    try:
        job = await commands.jobs.end(
            job_id,
            reason="cancelled",
            conversation=context.target.key,
            creator_id=commands._creator_scope(context),
        )
    except JobError as exc:
        return say(
            context.language, f"无法取消：{exc}", f"Cannot cancel: {exc}", f"无法取消 (cannot cancel): {exc}"
        )
    return say(
        context.language,
        f"已取消任务 {job.id}（{job.name}）。",
        f"Cancelled job {job.id} ({job.name}).",
        f"已取消任务 {job.id} ({job.name}) (cancelled).",
    )


async def _every(commands: Commands, context: CommandContext, args: str) -> str:
    interval_text, _, text = args.partition(" ")
    text = text.strip()
    if not interval_text or not text:
        return say(
            context.language,
            "用法：/every <间隔> <文本>，例如 /every 1m 心跳",
            "Usage: /every <interval> <text>, e.g. /every 1m heartbeat",
            "用法 (usage): /every <间隔 interval> <文本 text>, 例如 /every 1m 心跳",
        )
    try:
        seconds = parse_interval(interval_text)
        # Refuses an interval outside the allowed range, naming the range.
        schedule = interval_schedule(
            seconds,
            commands.config.agent.timezone,
            commands.clock.now(),
            minimum_s=commands.config.scheduler.min_interval_s,
        )
        job = await commands.jobs.create(
            conversation=context.target.key,
            creator_id=context.author_id,
            name=f"every {format_interval(seconds)}",
            schedule=schedule,
            action="send",
            text=text,
            created_key=f"turn:{context.turn_id}:every",
        )
    except ScheduleError as exc:
        return say(
            context.language, f"无法创建：{exc}", f"Cannot create: {exc}", f"无法创建 (cannot create): {exc}"
        )
    every = format_interval(seconds)
    zh = f"已创建任务 {job.id}: 每 {every} 发送 {text!r}。/cancel {job.id} 取消。"
    created = say(
        context.language,
        zh,
        f"Created job {job.id}: sends {text!r} every {every}. /cancel {job.id} to stop.",
        zh,
    )
    if commands.forecast is not None:
        # Held: this reply goes before the first firing.
        label = say(context.language, "送达", "Delivery", "送达 (delivery)")
        created += f"\n{label}: {await deliverability(job, commands.forecast, held=1)}"
    return created


async def _status(commands: Commands, context: CommandContext, args: str) -> str:
    uptime = int(time.monotonic() - commands.status_info.started_monotonic)
    jobs = await commands.jobs.list_jobs(context.target.key)
    history = await commands.turns.count_history(context.target.key)
    info = commands.status_info
    zone = ZoneInfo(commands.config.agent.timezone)
    midnight = commands.clock.now().astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    last, today = await commands.turns.token_usage(context.target.key, midnight)
    tokens = (
        f"tokens: last turn {last.input_tokens} in / {last.output_tokens} out ({last.model_name}), "
        f"today {today.input_tokens} in / {today.output_tokens} out"
        if last.model_name
        else "tokens: no model turn yet"
    )
    summary = await commands.turns.summary(context.target.key)
    remembered = ""
    if summary is not None:
        text = summary.text if len(summary.text) <= 200 else summary.text[:200] + "…"
        remembered = f"\nsummary of {summary.turns} earlier turns: {text}"
    refused = "".join(f"\nplatform: {line}" for line in info.learned())
    return (
        f"Herald {__version__} · up {format_interval(uptime)}\n"
        f"model: {info.model} · {info.model_state()}\n"
        f"this conversation: {history} turns in history, {len(jobs)} active jobs\n"
        f"{tokens}{remembered}{refused}"
    )


COMMANDS: dict[str, Handler] = {
    "help": _help,
    "reset": _reset,
    "jobs": _jobs,
    "cancel": _cancel,
    "every": _every,
    "status": _status,
}
