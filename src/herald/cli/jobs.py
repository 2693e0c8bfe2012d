"""`herald jobs list|pause|resume|run|cancel`: the operator's view of scheduled jobs, straight from
the store. A running Herald sees each change at its scheduler's next look (at most five minutes;
the console's buttons wake it at once)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

import typer

from herald.cli import app
from herald.cli.run import ConfigOption, load_or_exit
from herald.cli.storage import storage_url
from herald.config import HeraldConfig

if TYPE_CHECKING:
    from rich.table import Table

    from herald.core.jobs import Job
    from herald.scheduler import JobStore

jobs_app = typer.Typer(help="List, pause, resume, run or cancel scheduled jobs.", no_args_is_help=True)
JobId = Annotated[str, typer.Argument(help="The job id (see `herald jobs list`).")]
app.add_typer(jobs_app, name="jobs")


async def _list(url: str, settings: HeraldConfig, conversation: str | None, include_ended: bool) -> Table:
    from zoneinfo import ZoneInfo

    from rich.table import Table

    from herald.core.clock import SystemClock
    from herald.scheduler import JobStore
    from herald.store import Database

    db = Database(url)
    try:
        await db.migrate()
        jobs = await JobStore(db, SystemClock()).list_jobs(conversation, include_ended=include_ended)
    finally:
        await db.dispose()
    zone = ZoneInfo(settings.agent.timezone)
    table = Table(title=f"Scheduled jobs ({len(jobs)})")
    for column in ("id", "conversation", "name", "schedule", "next run", "runs", "action", "state"):
        table.add_column(column, no_wrap=column in ("id", "conversation", "name"))
    for job in jobs:
        following = f"{job.next_run_at.astimezone(zone):%Y-%m-%d %H:%M:%S}" if job.next_run_at else "-"
        action = f"send {job.text!r}" if job.action == "send" else f"agent: {job.note}"
        state = job.state
        table.add_row(
            job.id,
            job.conversation,
            job.name,
            job.schedule.describe(),
            following,
            str(job.runs),
            action,
            state,
        )
    return table


@jobs_app.command("list")
def list_jobs(
    config: ConfigOption = None,
    conversation: Annotated[str | None, typer.Option(help="Only this conversation, e.g. c2c:OPENID.")] = None,
    all_jobs: Annotated[bool, typer.Option("--all", help="Include cancelled and finished jobs.")] = False,
) -> None:
    """List scheduled jobs."""
    from rich.console import Console

    settings = load_or_exit(config)
    url = storage_url(settings)
    Console().print(asyncio.run(_list(url, settings, conversation, all_jobs)))


async def _change(url: str, change: Callable[[JobStore], Awaitable[Job]], said: Callable[[Job], str]) -> str:
    from herald.core.clock import SystemClock
    from herald.scheduler import JobError, JobStore
    from herald.store import Database

    db = Database(url)
    try:
        await db.migrate()
        return said(await change(JobStore(db, SystemClock())))
    except JobError as exc:
        raise typer.BadParameter(str(exc), param_hint="JOB_ID") from None
    finally:
        await db.dispose()


def _apply(
    config: ConfigOption, change: Callable[[JobStore], Awaitable[Job]], said: Callable[[Job], str]
) -> None:
    settings = load_or_exit(config)
    typer.echo(asyncio.run(_change(storage_url(settings), change, said)))


@jobs_app.command("cancel")
def cancel(job_id: JobId, config: ConfigOption = None) -> None:
    """Cancel a job; a running Herald stops firing it."""
    _apply(
        config,
        lambda jobs: jobs.end(job_id, reason="cancelled"),
        lambda job: f"cancelled {job.id} ({job.name}) in {job.conversation}",
    )


@jobs_app.command("pause")
def pause(
    job_id: JobId,
    config: ConfigOption = None,
    reason: Annotated[
        str, typer.Option(help="Why; shown with the job until it resumes.")
    ] = "from the command line",
) -> None:
    """Pause a job: it keeps its schedule and runs but does not fire until resumed."""
    _apply(
        config,
        lambda jobs: jobs.pause(job_id, reason=reason),
        lambda job: f"paused {job.id} ({job.name}) in {job.conversation}: {job.state}",
    )


@jobs_app.command("resume")
def resume(job_id: JobId, config: ConfigOption = None) -> None:
    """Resume a paused job from its next slot; the slots it missed while paused do not fire."""

    def said(job: Job) -> str:
        if not job.active:
            return f"{job.id} ({job.name}) {job.state}: its time passed while it was paused"
        assert job.next_run_at is not None
        return f"resumed {job.id} ({job.name}); next run {job.next_run_at.isoformat()}"

    _apply(config, lambda jobs: jobs.resume(job_id), said)


@jobs_app.command("run")
def run_now(job_id: JobId, config: ConfigOption = None) -> None:
    """Run a job once now, keeping its schedule; a running Herald fires it at its next look."""
    _apply(
        config,
        lambda jobs: jobs.run_now(job_id),
        lambda job: (
            f"{job.id} ({job.name}) runs now: a running Herald fires it at its scheduler's next look "
            "(within five minutes)"
        ),
    )
