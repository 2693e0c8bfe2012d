"""Scheduled jobs in the store (the `JobBook` of core): create (idempotently), list, edit, pause,
resume, run now, end, and find what is due.

A paused job keeps its row (schedule, runs) with no next slot; resuming computes the first slot
after now, so what it missed while paused does not fire. Running a job now sets its next slot to
this second: the scheduler fires it like any slot (the turn or outbox key `job:<id>:<slot>` makes
a second request in the same second, or a retry after a crash, a no-op), then follows the schedule
from there, so its regular slots are unchanged.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Insert, Select, Table, bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from herald.core.clock import Clock
from herald.core.jobs import Job, JobError
from herald.core.schedule import Schedule, ScheduleError, format_interval, next_after, shortest_gap
from herald.store import Database
from herald.store.tables.agent import AgentJob


def _job(row: AgentJob) -> Job:
    schedule = Schedule(
        kind=row.kind,  # type: ignore[arg-type]
        timezone=row.timezone,
        cron=row.cron,
        run_at=row.run_at,
        interval_s=row.interval_s,
        anchor=row.created_at if row.kind == "interval" else None,
    )
    return Job(
        id=row.id,
        conversation=row.conversation,
        creator_id=row.creator_id,
        name=row.name,
        schedule=schedule,
        action=row.action,
        note=row.note,
        text=row.text,
        active=row.active,
        next_run_at=row.next_run_at,
        last_run_at=row.last_run_at,
        runs=row.runs,
        created_at=row.created_at,
        end_reason=row.end_reason,
        paused_at=row.paused_at,
        pause_reason=row.pause_reason,
    )


def _apply(row: AgentJob, schedule: Schedule) -> None:
    row.kind = schedule.kind
    row.timezone = schedule.timezone
    row.cron = schedule.cron
    row.run_at = schedule.run_at
    row.interval_s = schedule.interval_s


log = logging.getLogger(__name__)

# A missed slot at most this late still fires on its own ([scheduler] catch_up_s).
CATCH_UP_S = 60.0
INVALID_SCHEDULE = "invalid schedule"  # the end reason of a stored job whose schedule cannot run
# The first key of the PostgreSQL advisory lock creates take per conversation (b"hjob" as int4).
JOBS_LOCK = int.from_bytes(b"hjob", "big")
JOBS = cast(Table, AgentJob.__table__)


def _active_count(conversation: str) -> Select[Any]:
    return (
        select(func.count())
        .select_from(AgentJob)
        .where(AgentJob.conversation == conversation, AgentJob.active.is_(True))
    )


def _insert_below_cap(row: AgentJob, cap: int) -> Insert:
    """INSERT the row only while its conversation has fewer than `cap` active jobs."""
    values = [bindparam(None, getattr(row, column.key), type_=column.type) for column in JOBS.columns]
    below_cap = _active_count(row.conversation).scalar_subquery() < cap
    return insert(JOBS).from_select([column.key for column in JOBS.columns], select(*values).where(below_cap))


class JobStore:
    """The store-backed `JobBook`, plus what the scheduler loop needs (due, fired)."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        max_per_conversation: int = 20,
        min_interval_s: int = 0,
        catch_up_s: float = CATCH_UP_S,
    ) -> None:
        self.db = db
        self.clock = clock
        self.max_per_conversation = max_per_conversation
        self.min_interval_s = min_interval_s
        self.catch_up_s = catch_up_s
        self.on_change: Callable[[], None] | None = None

    def _check_often(self, schedule: Schedule) -> None:
        """Every job, whoever creates it (/every, the agent's future_task), runs at most this often."""
        if not self.min_interval_s:
            return
        gap = shortest_gap(schedule, self.clock.now())
        if gap is not None and gap < self.min_interval_s:
            raise ScheduleError(
                f"that schedule runs every {format_interval(int(gap))}, more often than the minimum "
                f"{format_interval(self.min_interval_s)} ([scheduler] min_interval_s); "
                "choose a longer interval"
            )

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

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
        """Store a new job; with `created_key`, a second call returns the first call's job.

        The per-conversation cap holds under concurrent creates (several `future_task` calls in
        one model response): the count and the insert are one statement, and on PostgreSQL the
        creates of one conversation take turns on an advisory lock, so each counts the others.
        """
        now = self.clock.now()
        self._check_often(schedule)
        first = next_after(schedule, now)
        if first is None:
            raise ScheduleError("that schedule never runs")
        row = AgentJob(
            id=secrets.token_hex(4),
            conversation=conversation,
            creator_id=creator_id,
            name=name[:200],
            action=action,
            note=note,
            text=text,
            active=True,
            next_run_at=first,
            last_run_at=None,
            runs=0,
            created_key=created_key,
            created_at=now if schedule.anchor is None else schedule.anchor,
            ended_at=None,
            end_reason=None,
        )
        _apply(row, schedule)
        async with self.db.session() as session:
            if created_key is not None:
                existing = await session.scalar(select(AgentJob).where(AgentJob.created_key == created_key))
                if existing is not None:
                    return _job(existing)
            if self.db.is_postgresql:
                await session.execute(
                    select(func.pg_advisory_xact_lock(JOBS_LOCK, func.hashtext(conversation)))
                )
            try:
                inserted = await session.execute(_insert_below_cap(row, self.max_per_conversation))
                await session.commit()
            except IntegrityError:
                await session.rollback()
                if created_key is None:
                    raise
                existing = await session.scalar(select(AgentJob).where(AgentJob.created_key == created_key))
                assert existing is not None
                return _job(existing)
            if inserted.rowcount == 0:  # type: ignore[attr-defined]
                active = await session.scalar(_active_count(conversation))
                raise ScheduleError(
                    f"this conversation already has {active} active jobs (limit {self.max_per_conversation})"
                )
        self._changed()
        return _job(row)

    async def get(self, job_id: str) -> Job | None:
        async with self.db.session() as session:
            row = await session.get(AgentJob, job_id)
            return _job(row) if row is not None else None

    async def list_jobs(self, conversation: str | None = None, *, include_ended: bool = False) -> list[Job]:
        query = select(AgentJob).order_by(AgentJob.created_at, AgentJob.id)
        if conversation is not None:
            query = query.where(AgentJob.conversation == conversation)
        if not include_ended:
            query = query.where(AgentJob.active.is_(True))
        async with self.db.session() as session:
            return [_job(row) for row in await session.scalars(query)]

    async def _owned(
        self, session: AsyncSession, job_id: str, conversation: str | None, creator_id: str | None
    ) -> AgentJob:
        row = await session.get(AgentJob, job_id.strip(), with_for_update=True)
        if conversation is not None and (row is None or not row.active or row.conversation != conversation):
            # Within a conversation, say no more: other conversations' jobs are not its business.
            raise JobError(f"no active job {job_id!r} in this conversation")
        if row is None:
            raise JobError(f"no job {job_id!r} (see the list of jobs for their ids)")
        if not row.active:
            raise JobError(f"job {job_id!r} ({row.name}) has already ended ({row.end_reason or 'ended'})")
        if creator_id is not None and row.creator_id not in (None, creator_id):
            raise JobError(f"job {job_id!r} belongs to someone else")
        return row

    async def edit(
        self,
        job_id: str,
        *,
        conversation: str | None,
        creator_id: str | None,
        name: str | None = None,
        schedule: Schedule | None = None,
        note: str | None = None,
    ) -> Job:
        async with self.db.session() as session:
            row = await self._owned(session, job_id, conversation, creator_id)
            if name is not None:
                row.name = name[:200]
            if note is not None:
                row.note = note
            if schedule is not None:
                self._check_often(schedule)
                if schedule.kind == "interval":
                    schedule = Schedule(
                        "interval", schedule.timezone, interval_s=schedule.interval_s, anchor=self.clock.now()
                    )
                    row.created_at = self.clock.now()
                following = next_after(schedule, self.clock.now())
                if following is None:
                    raise ScheduleError("that schedule never runs")
                _apply(row, schedule)
                if row.paused_at is None:  # a paused job gets its next slot when it resumes
                    row.next_run_at = following
            await session.commit()
            job = _job(row)
        self._changed()
        return job

    async def end(
        self, job_id: str, *, reason: str, conversation: str | None = None, creator_id: str | None = None
    ) -> Job:
        async with self.db.session() as session:
            row = await self._owned(session, job_id, conversation, creator_id)
            row.active = False
            row.next_run_at = None
            row.ended_at = self.clock.now()
            row.end_reason = reason
            await session.commit()
            job = _job(row)
        self._changed()
        return job

    async def pause(
        self, job_id: str, *, reason: str, conversation: str | None = None, creator_id: str | None = None
    ) -> Job:
        async with self.db.session() as session:
            row = await self._owned(session, job_id, conversation, creator_id)
            if row.paused_at is not None:
                raise JobError(
                    f"job {row.id!r} ({row.name}) is already paused ({row.pause_reason or 'paused'})"
                )
            row.paused_at = self.clock.now()
            row.pause_reason = reason[:500] or None
            row.next_run_at = None
            await session.commit()
            job = _job(row)
        self._changed()
        return job

    async def resume(
        self, job_id: str, *, conversation: str | None = None, creator_id: str | None = None
    ) -> Job:
        now = self.clock.now()
        async with self.db.session() as session:
            row = await self._owned(session, job_id, conversation, creator_id)
            if row.paused_at is None:
                raise JobError(f"job {row.id!r} ({row.name}) is not paused")
            row.paused_at = None
            row.pause_reason = None
            try:
                row.next_run_at = next_after(_job(row).schedule, now)
            except ScheduleError as exc:
                raise JobError(f"job {row.id!r} ({row.name}) cannot resume: {exc}") from None
            if row.next_run_at is None:
                # A one-shot whose time passed while it was paused: nothing is left to fire.
                row.active = False
                row.ended_at = now
                row.end_reason = "missed while paused"
            await session.commit()
            job = _job(row)
        self._changed()
        return job

    async def run_now(
        self, job_id: str, *, conversation: str | None = None, creator_id: str | None = None
    ) -> Job:
        slot = self.clock.now().replace(microsecond=0)
        async with self.db.session() as session:
            row = await self._owned(session, job_id, conversation, creator_id)
            if row.paused_at is not None:
                raise JobError(
                    f"job {row.id!r} ({row.name}) is paused ({row.pause_reason or 'paused'}); resume it first"
                )
            if row.last_run_at != slot:  # else this second's run has fired already
                row.next_run_at = slot if row.next_run_at is None else min(row.next_run_at, slot)
            await session.commit()
            job = _job(row)
        self._changed()
        return job

    async def due(self, now: datetime, limit: int = 100) -> list[Job]:
        query = (
            select(AgentJob)
            .where(AgentJob.active.is_(True), AgentJob.paused_at.is_(None), AgentJob.next_run_at <= now)
            .order_by(AgentJob.next_run_at, AgentJob.id)
            .limit(limit)
        )
        async with self.db.session() as session:
            return [_job(row) for row in await session.scalars(query)]

    async def next_due(self) -> datetime | None:
        query = (
            select(AgentJob.next_run_at)
            .where(AgentJob.active.is_(True), AgentJob.paused_at.is_(None), AgentJob.next_run_at.is_not(None))
            .order_by(AgentJob.next_run_at)
            .limit(1)
        )
        async with self.db.session() as session:
            value: datetime | None = await session.scalar(query)
        return value

    async def fired(self, job_id: str, slot: datetime, now: datetime) -> Job | None:
        """Record that `slot` fired. The next slot is the one after it while that one is at most
        `catch_up_s` late, so a restart or a leader's failover loses no slot; a slot missed for
        longer (Herald was down) coalesces with the rest into the first slot after now."""
        async with self.db.session() as session:
            row = await session.get(AgentJob, job_id)
            if row is None or not row.active or row.paused_at is not None or row.next_run_at != slot:
                return None
            row.runs += 1
            row.last_run_at = slot
            try:
                schedule = _job(row).schedule
                # No slot comes before the job's start: a run-now slot (this second, truncated)
                # can precede an interval's first moment, its creation to the microsecond.
                following = next_after(schedule, max(slot, row.created_at))
                if following is not None and (now - following).total_seconds() > self.catch_up_s:
                    following = next_after(schedule, now)
            except ScheduleError as exc:
                # Stored before creation checked it (or edited by hand): end it, rather than fail
                # the scheduler's pass at every slot.
                log.error("job %s (%s) ended: its schedule cannot run: %s", row.id, row.name, exc)
                following, row.end_reason = None, INVALID_SCHEDULE
            row.next_run_at = following
            if following is None:
                row.active = False
                row.ended_at = now
                row.end_reason = row.end_reason or "finished"
            await session.commit()
            return _job(row)
