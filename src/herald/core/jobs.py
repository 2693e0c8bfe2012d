"""Scheduled jobs as the agent and the commands see them: the `Job` value, the `JobBook` protocol
they create, list, edit, pause, resume, run and end jobs through, its next firings, and how a job
reads to a user.

`scheduler/` implements the book (persisted, fired on the Clock); `app` hands it to the agent's
tools and to the commands, which never import the scheduler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from herald.core.platform import NextRoute, NextSend
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


# A job paused because its next firing could not reach the user; the dispatcher resumes every job
# paused with this reason when a message from its conversation is stored.
UNDELIVERABLE_PAUSE = "not deliverable until the user writes again"

# The platform's projection of sends to a target at given times, after `held` sends that go first
# (`Platform.forecast`), handed to the agent's tools, the commands and the dispatcher by the app.
Forecast = Callable[..., Awaitable[tuple[NextSend, ...]]]

ROUTE_WORDS = {
    NextRoute.REPLY: "as replies to your message",
    NextRoute.PROACTIVE: "as proactive messages",
    NextRoute.WAIT: "as proactive messages after a rate-limit wait",
}


ROUTE_ONE = {
    NextRoute.REPLY: "a reply to your message",
    NextRoute.PROACTIVE: "a proactive message",
    NextRoute.WAIT: "a proactive message",
}


def _words(send: NextSend, table: dict[NextRoute, str]) -> str:
    """The route in words, with the platform's own word for it when it has one."""
    words = table.get(send.route, send.route.value)
    return f"{words} ({send.via})" if send.via else words


def paused_until_written(job: Job) -> bool:
    return job.paused and (job.pause_reason or "").startswith(UNDELIVERABLE_PAUSE)


async def deliverability(job: Job, forecast: Forecast, *, held: int = 1, horizon: int = 60) -> str:
    """How many of the job's next firings can reach the user, and by which route, in one line.

    `held` sends go first (the reply to the message that created the job). The firing that would
    be the last deliverable one carries the notice that the job stopped instead (see
    `Dispatcher.fire_job`), so it is not counted as a delivery."""
    firings = next_firings(job, horizon)
    if not firings:
        return "it has no firings left"
    routes = await forecast(job.target, firings, held=held)
    stop = next((i for i, send in enumerate(routes) if send.route is NextRoute.UNDELIVERABLE), None)
    if stop is None:
        runs: list[str] = _runs(firings, routes, job.schedule.timezone)
        return f"the next {len(firings)} firings can all be delivered: {', then '.join(runs)}"
    why = routes[stop].why
    if stop == 0:
        return (
            f"not deliverable: {why}. It will pause at its first firing; a message from the user resumes it"
        )
    delivered = stop - 1  # the last deliverable firing tells the user it stopped
    where = _words(routes[stop - 1], ROUTE_ONE)
    parts = _runs(firings[:delivered], routes[:delivered], job.schedule.timezone) if delivered else []
    head = f"{', then '.join(parts)}, then " if parts else "no firing can be delivered, but "
    return (
        f"{head}a notice that it stopped, as {where}, at "
        f"{_clock(firings[stop - 1], job.schedule.timezone)}; after that not deliverable: {why}. "
        "It then pauses; a message from the user resumes it and extends what can be delivered"
    )


def _runs(firings: list[datetime], routes: tuple[NextSend, ...], timezone: str) -> list[str]:
    """Consecutive firings with the same route, as "the next 3 firings (until 12:03) as ..."."""
    runs: list[str] = []
    start = 0
    for index in range(1, len(firings) + 1):
        if index == len(firings) or (routes[index].route, routes[index].via) != (
            routes[start].route,
            routes[start].via,
        ):
            count = index - start
            words = _words(routes[start], ROUTE_WORDS)
            first = "the next" if start == 0 else "the following"
            noun = "firing" if count == 1 else f"{count} firings"
            runs.append(f"{first} {noun} (until {_clock(firings[index - 1], timezone)}) {words}")
            start = index
    return runs


def _clock(at: datetime, timezone: str) -> str:
    return f"{at.astimezone(ZoneInfo(timezone)):%m-%d %H:%M}"
