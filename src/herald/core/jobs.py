"""Scheduled jobs as the agent and the commands see them: the `Job` value, the `JobBook` protocol
they create, list, edit, pause, resume, run and end jobs through, its next firings, and how a job
reads to a user.

`scheduler/` implements the book (persisted, fired on the Clock); `app` hands it to the agent's
tools and to the commands, which never import the scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from herald.core.schedule import Schedule, ScheduleError, next_after
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
    paused_at: datetime | None = None
    pause_reason: str | None = None

    @property
    def target(self) -> Target:
        return Target.parse(self.conversation)

    @property
    def paused(self) -> bool:
        return self.active and self.paused_at is not None

    @property
    def state(self) -> str:
        """active, paused (reason) or ended (reason), as a user reads it."""
        if not self.active:
            return f"ended ({self.end_reason or 'ended'})"
        if self.paused:
            return f"paused ({self.pause_reason})" if self.pause_reason else "paused"
        return "active"


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

    async def get(self, job_id: str) -> Job | None: ...

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

    async def pause(
        self, job_id: str, *, reason: str, conversation: str | None = None, creator_id: str | None = None
    ) -> Job:
        """Stop firing the job until it is resumed; it keeps its schedule and its runs."""
        ...

    async def resume(
        self, job_id: str, *, conversation: str | None = None, creator_id: str | None = None
    ) -> Job:
        """Fire a paused job again from its first slot after now: the slots missed while it was
        paused do not fire."""
        ...

    async def run_now(
        self, job_id: str, *, conversation: str | None = None, creator_id: str | None = None
    ) -> Job:
        """Fire an active job once now, as a firing of the slot of this second (asking twice in
        one second fires once); its regular slots stay as they are."""
        ...


def next_firings(job: Job, count: int = 5) -> list[datetime]:
    """The job's next `count` firings (UTC); none for a paused or ended job."""
    if not job.active or job.paused or job.next_run_at is None:
        return []
    firings = [job.next_run_at]
    while len(firings) < count:
        try:
            following = next_after(job.schedule, firings[-1])
        except ScheduleError:
            break
        if following is None:
            break
        firings.append(following)
    return firings


def describe_job(job: Job, timezone: str) -> str:
    when = "next -"
    if job.paused or not job.active:
        when = job.state
    elif job.next_run_at is not None:
        when = f"next {job.next_run_at.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M:%S}"
    what = f"sends {job.text!r}" if job.action == "send" else f"note: {job.note}"
    return f"[{job.id}] {job.name} · {job.schedule.describe()} · {when} · runs {job.runs} · {what}"
