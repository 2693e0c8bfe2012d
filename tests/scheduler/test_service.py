"""The scheduler against a real store (SQLite and PostgreSQL) on a virtual clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from herald.core.clock import VirtualClock
from herald.scheduler import (
    Job,
    JobError,
    JobStore,
    ScheduleError,
    Scheduler,
    cron_schedule,
    once_schedule,
    slot_key,
)
from herald.store import Database

START = datetime(2026, 11, 21, 9, 0, 20, tzinfo=UTC)
CONV = "c2c:user-1"


class Recorder:
    def __init__(self) -> None:
        self.fired: list[str] = []

    async def __call__(self, job: Job, slot: datetime) -> None:
        self.fired.append(slot_key(job, slot))


async def run_minutes(clock: VirtualClock, scheduler: Scheduler, minutes: int) -> None:
    for _ in range(minutes):
        await clock.advance(60)
        await scheduler.wait_idle()


async def started(db: Database, clock: VirtualClock, recorder: Recorder) -> Scheduler:
    scheduler = Scheduler(JobStore(db, clock), clock, recorder)
    await scheduler.start()
    await scheduler.wait_idle()
    return scheduler


async def test_every_minute_job_fires_once_per_minute(db: Database) -> None:
    clock = VirtualClock(START)
    recorder = Recorder()
    scheduler = await started(db, clock, recorder)
    await scheduler.jobs.create(
        conversation=CONV, creator_id="user-1", name="heartbeat", schedule=cron_schedule("* * * * *", "UTC")
    )
    await scheduler.wait_idle()
    await run_minutes(clock, scheduler, 10)
    await scheduler.stop()
    assert len(recorder.fired) == 10
    assert len(set(recorder.fired)) == 10


async def test_jobs_survive_a_restart_without_double_firing(db: Database) -> None:
    clock = VirtualClock(START)
    recorder = Recorder()
    scheduler = await started(db, clock, recorder)
    await scheduler.jobs.create(
        conversation=CONV, creator_id="user-1", name="heartbeat", schedule=cron_schedule("* * * * *", "UTC")
    )
    await scheduler.wait_idle()
    await run_minutes(clock, scheduler, 5)
    await scheduler.stop()

    scheduler = await started(db, clock, recorder)
    await run_minutes(clock, scheduler, 5)
    await scheduler.stop()
    assert len(recorder.fired) == 10
    assert len(set(recorder.fired)) == 10


async def test_downtime_coalesces_missed_slots_into_one_firing(db: Database) -> None:
    clock = VirtualClock(START)
    recorder = Recorder()
    store = JobStore(db, clock)
    await store.create(
        conversation=CONV, creator_id="user-1", name="hb", schedule=cron_schedule("* * * * *", "UTC")
    )
    await clock.advance(3 * 3600)  # Herald was down for three hours
    scheduler = await started(db, clock, recorder)
    assert len(recorder.fired) == 1
    await run_minutes(clock, scheduler, 2)
    await scheduler.stop()
    assert len(recorder.fired) == 3


async def test_one_shot_fires_once_then_ends(db: Database) -> None:
    clock = VirtualClock(START)
    recorder = Recorder()
    scheduler = await started(db, clock, recorder)
    job = await scheduler.jobs.create(
        conversation=CONV,
        creator_id="user-1",
        name="reminder",
        schedule=once_schedule("2026-11-21T17:02:00", "Asia/Shanghai", clock.now()),
    )
    await scheduler.wait_idle()
    await run_minutes(clock, scheduler, 5)
    await scheduler.stop()
    assert recorder.fired == [slot_key(job, datetime(2026, 11, 21, 9, 2, tzinfo=UTC))]
    ended = await scheduler.jobs.get(job.id)
    assert ended is not None and not ended.active and ended.end_reason == "finished"


async def test_creation_is_idempotent_and_ending_is_scoped(db: Database) -> None:
    clock = VirtualClock(START)
    store = JobStore(db, clock, max_per_conversation=2)
    schedule = cron_schedule("0 * * * *", "UTC")
    first = await store.create(
        conversation=CONV, creator_id="user-1", name="a", schedule=schedule, created_key="t1:call1"
    )
    again = await store.create(
        conversation=CONV, creator_id="user-1", name="a", schedule=schedule, created_key="t1:call1"
    )
    assert again.id == first.id
    await store.create(conversation=CONV, creator_id="user-1", name="b", schedule=schedule)
    with pytest.raises(ScheduleError, match="limit"):
        await store.create(conversation=CONV, creator_id="user-1", name="c", schedule=schedule)

    with pytest.raises(JobError):
        await store.end(first.id, reason="cancelled", conversation="c2c:someone-else")
    with pytest.raises(JobError):
        await store.end(first.id, reason="cancelled", conversation=CONV, creator_id="user-2")
    ended = await store.end(first.id, reason="cancelled", conversation=CONV, creator_id="user-1")
    assert not ended.active
    assert [job.name for job in await store.list_jobs(CONV)] == ["b"]
