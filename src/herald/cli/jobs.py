"""`herald jobs list|cancel`: the operator's view of scheduled jobs, straight from the store."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from herald.cli import app
from herald.cli.run import ConfigOption, load_or_exit
from herald.cli.storage import storage_url
from herald.config import HeraldConfig

jobs_app = typer.Typer(help="List or cancel scheduled jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


async def _list(url: str, settings: HeraldConfig, conversation: str | None, include_ended: bool) -> Table:
    from zoneinfo import ZoneInfo

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
        state = "active" if job.active else (job.end_reason or "ended")
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
    settings = load_or_exit(config)
    url = storage_url(settings)
    Console().print(asyncio.run(_list(url, settings, conversation, all_jobs)))


async def _cancel(url: str, job_id: str) -> str:
    from herald.core.clock import SystemClock
    from herald.scheduler import JobError, JobStore
    from herald.store import Database

    db = Database(url)
    try:
        await db.migrate()
        job = await JobStore(db, SystemClock()).end(job_id, reason="cancelled")
        return f"cancelled {job.id} ({job.name}) in {job.conversation}"
    except JobError as exc:
        raise typer.BadParameter(str(exc), param_hint="JOB_ID") from None
    finally:
        await db.dispose()


@jobs_app.command("cancel")
def cancel(
    job_id: Annotated[str, typer.Argument(help="The job id (see `herald jobs list`).")],
    config: ConfigOption = None,
) -> None:
    """Cancel a job; a running Herald stops firing it."""
    settings = load_or_exit(config)
    typer.echo(asyncio.run(_cancel(storage_url(settings), job_id)))
