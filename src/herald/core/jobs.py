"""Scheduled jobs as the agent and the commands see them: the `Job` value, the `JobBook` protocol
they create, list, edit and end jobs through, and how a job reads to a user.

`scheduler/` implements the book (persisted, fired on the Clock); `app` hands it to the agent's
tools and to the commands, which never import the scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from herald.core.schedule import Schedule
from herald.core.target import Target


class JobError(LookupError):
    """A job cannot be found or touched by this caller; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    conversation: str
    creator_id: str | None
    name: str
    schedule: Schedule
    action: str  # agent | send
    note: str
    text: str | None
    active: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    runs: int
    created_at: datetime
    end_reason: str | None = None

    @property
    def target(self) -> Target:
        return Target.parse(self.conversation)


class JobBook(Protocol):
    """The jobs of each conversation. `creator_id` (when not None) limits a change to that
    creator's jobs; a bad id or owner raises `JobError`, a schedule that never runs or a full
    conversation raises `ScheduleError`."""

    async def create(
        self,
        *,
        conversation: str,
        creator_id: str | None,
        name: str,
        schedule: Schedule,
        action: str = "agent",
        note: str = "",
        text: str | None = None,
        created_key: str | None = None,
    ) -> Job:
        """Store a new job; with `created_key`, a second call returns the first call's job."""
        ...

    async def list_jobs(
        self, conversation: str | None = None, *, include_ended: bool = False
    ) -> list[Job]: ...

    async def edit(
        self,
        job_id: str,
        *,
        conversation: str | None,
        creator_id: str | None,
        name: str | None = None,
        schedule: Schedule | None = None,
        note: str | None = None,
    ) -> Job: ...

    async def end(
        self, job_id: str, *, reason: str, conversation: str | None = None, creator_id: str | None = None
    ) -> Job: ...


def describe_job(job: Job, timezone: str) -> str:
    following = "-"
    if job.next_run_at is not None:
        following = f"{job.next_run_at.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M:%S}"
    what = f"sends {job.text!r}" if job.action == "send" else f"note: {job.note}"
    return f"[{job.id}] {job.name} · {job.schedule.describe()} · next {following} · runs {job.runs} · {what}"
