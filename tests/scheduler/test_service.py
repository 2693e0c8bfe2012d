"""The scheduler against a real store (SQLite and PostgreSQL) on a virtual clock."""

from __future__ import annotations

import asyncio
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
from herald.store.tables.agent import AgentJob

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


async def test_a_short_outage_fires_each_missed_slot_once_in_order(db: Database) -> None:
    clock = VirtualClock(START)
    recorder = Recorder()
    store = JobStore(db, clock)
    job = await store.create(
        conversation=CONV, creator_id="user-1", name="hb", schedule=cron_schedule("* * * * *", "UTC")
    )
    # Down from 09:00:20 to 09:02:30 (a restart, a failover): 09:01 is 90 s late, 09:02 is 30 s.
    await clock.advance(130)
    scheduler = await started(db, clock, recorder)
    minute = datetime(2026, 11, 21, 9, 1, tzinfo=UTC)
    # 09:01 is more than `catch_up_s` late, but it is the first missed slot: it fires once for the
    # outage, and 09:02, within the bound, fires on its own after it.
    assert recorder.fired == [slot_key(job, minute), slot_key(job, minute.replace(minute=2))]
    await run_minutes(clock, scheduler, 1)
    await scheduler.stop()
    assert recorder.fired[2:] == [slot_key(job, minute.replace(minute=3))]


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


async def test_the_cap_holds_under_concurrent_creates(db: Database) -> None:
    # 30 `future_task` creates in one model response run at once against a cap of 20.
    store = JobStore(db, VirtualClock(START), max_per_conversation=20)
    schedule = cron_schedule("0 * * * *", "UTC")
    outcomes = await asyncio.gather(
        *(
            store.create(
                conversation=CONV, creator_id="user-1", name=f"j{i}", schedule=schedule, created_key=f"t:{i}"
            )
            for i in range(30)
        ),
        return_exceptions=True,
    )
    created = [outcome for outcome in outcomes if isinstance(outcome, Job)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, ScheduleError)]
    assert len(created) == 20 and len(refused) == 10
    assert all("limit 20" in str(error) for error in refused)
    assert len(await store.list_jobs(CONV)) == 20
    # Another conversation has its own cap.
    await store.create(conversation="c2c:other", creator_id=None, name="x", schedule=schedule)


async def test_a_stored_job_whose_schedule_cannot_run_is_ended_and_the_others_keep_firing(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    clock = VirtualClock(START)
    recorder = Recorder()
    store = JobStore(db, clock)
    good = await store.create(
        conversation=CONV, creator_id=None, name="good", schedule=cron_schedule("* * * * *", "UTC")
    )
    # A job stored before creation checked its cron (February 31st never comes), due first.
    async with db.session() as session:
        session.add(
            AgentJob(
                id="badcron0",
                conversation=CONV,
                name="bad",
                kind="cron",
                cron="0 0 31 2 *",
                timezone="UTC",
                action="agent",
                note="",
                active=True,
                next_run_at=datetime(2026, 11, 21, 9, 0, 30, tzinfo=UTC),
                runs=0,
                created_at=START,
            )
        )
        await session.commit()
    scheduler = await started(db, clock, recorder)
    await run_minutes(clock, scheduler, 3)
    await scheduler.stop()
    assert [key for key in recorder.fired if key.startswith(f"job:{good.id}:")] == [
        slot_key(good, datetime(2026, 11, 21, 9, minute, tzinfo=UTC)) for minute in (1, 2, 3)
    ]
    assert [key for key in recorder.fired if key.startswith("job:badcron0:")] == [
        "job:badcron0:20261121T090030"
    ]
    bad = await store.get("badcron0")
    assert bad is not None and not bad.active and bad.end_reason == "invalid schedule"
    assert "never matches a date" in caplog.text
