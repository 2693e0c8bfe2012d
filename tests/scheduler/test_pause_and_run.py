"""Pausing, resuming and running a job now, against a real store (SQLite and PostgreSQL) and the
scheduler on a virtual clock; the next firings a job shows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from herald.core.clock import VirtualClock
from herald.scheduler import (
    JobError,
    JobStore,
    cron_schedule,
    describe_job,
    interval_schedule,
    next_firings,
    once_schedule,
    slot_key,
)
from herald.store import Database
from tests.scheduler.test_service import CONV, START, Recorder, run_minutes, started


async def test_a_paused_job_stops_firing_and_resumes_without_a_burst(db: Database) -> None:
    clock = VirtualClock(START)
    recorder = Recorder()
    scheduler = await started(db, clock, recorder)
    job = await scheduler.jobs.create(
        conversation=CONV, creator_id="user-1", name="hb", schedule=cron_schedule("* * * * *", "UTC")
    )
    await scheduler.wait_idle()
    await run_minutes(clock, scheduler, 2)  # 09:01, 09:02
    paused = await scheduler.jobs.pause(job.id, reason="noisy")
    await scheduler.wait_idle()
    await run_minutes(clock, scheduler, 10)  # 09:03 .. 09:12 do not fire
    listed = await scheduler.jobs.list_jobs(CONV)
    resumed = await scheduler.jobs.resume(job.id)
    await scheduler.wait_idle()
    fired_while_paused = len(recorder.fired)
    await run_minutes(clock, scheduler, 2)  # 09:13, 09:14
    await scheduler.stop()

    assert paused.paused and paused.next_run_at is None and paused.state == "paused (noisy)"
    assert [(j.id, j.pause_reason) for j in listed] == [(job.id, "noisy")]
    assert "paused (noisy)" in describe_job(listed[0], "UTC")
    assert next_firings(listed[0]) == []
    assert fired_while_paused == 2  # nothing fired while paused, and resuming fired nothing missed
    assert not resumed.paused and resumed.next_run_at == datetime(2026, 11, 21, 9, 13, tzinfo=UTC)
    assert recorder.fired == [
        slot_key(job, datetime(2026, 11, 21, 9, minute, tzinfo=UTC)) for minute in (1, 2, 13, 14)
    ]


async def test_a_paused_job_stays_paused_across_a_restart(db: Database) -> None:
    clock = VirtualClock(START)
    recorder = Recorder()
    store = JobStore(db, clock)
    job = await store.create(
        conversation=CONV, creator_id=None, name="hb", schedule=cron_schedule("* * * * *", "UTC")
    )
    await store.pause(job.id, reason="")
    scheduler = await started(db, clock, recorder)
    await run_minutes(clock, scheduler, 3)
    await scheduler.stop()
    stored = await store.get(job.id)
    assert recorder.fired == []
    assert stored is not None and stored.paused and stored.state == "paused"


async def test_an_interval_job_resumes_on_its_own_slots(db: Database) -> None:
    clock = VirtualClock(START)
    store = JobStore(db, clock)
    job = await store.create(
        conversation=CONV, creator_id=None, name="tick", schedule=interval_schedule(600, "UTC", START)
    )
    await store.pause(job.id, reason="maintenance")
    await clock.advance(25 * 60)
    resumed = await store.resume(job.id)
    assert resumed.next_run_at == datetime(2026, 11, 21, 9, 30, 20, tzinfo=UTC)  # anchor + 3 × 10 min


async def test_run_now_fires_once_per_second_and_keeps_the_schedule(db: Database) -> None:
    clock = VirtualClock(START)
    recorder = Recorder()
    scheduler = await started(db, clock, recorder)
    job = await scheduler.jobs.create(
        conversation=CONV, creator_id=None, name="hourly", schedule=cron_schedule("0 * * * *", "UTC")
    )
    await scheduler.wait_idle()
    # A double click: two requests in the same second.
    await asyncio.gather(scheduler.jobs.run_now(job.id), scheduler.jobs.run_now(job.id))
    await scheduler.wait_idle()
    after_first = list(recorder.fired)
    await scheduler.jobs.run_now(job.id)  # the same second again, after it fired
    await scheduler.wait_idle()
    after_second = list(recorder.fired)
    ran = await scheduler.jobs.get(job.id)
    await run_minutes(clock, scheduler, 60)
    await scheduler.stop()

    now_slot = slot_key(job, datetime(2026, 11, 21, 9, 0, 20, tzinfo=UTC))
    assert after_first == after_second == [now_slot]
    assert ran is not None and ran.runs == 1 and ran.next_run_at == datetime(2026, 11, 21, 10, tzinfo=UTC)
    assert recorder.fired == [now_slot, slot_key(job, datetime(2026, 11, 21, 10, tzinfo=UTC))]


async def test_run_now_a_second_later_fires_again(db: Database) -> None:
    clock = VirtualClock(START)
    recorder = Recorder()
    scheduler = await started(db, clock, recorder)
    job = await scheduler.jobs.create(
        conversation=CONV, creator_id=None, name="hourly", schedule=cron_schedule("0 * * * *", "UTC")
    )
    await scheduler.wait_idle()
    await scheduler.jobs.run_now(job.id)
    await scheduler.wait_idle()
    await clock.advance(1)
    await scheduler.jobs.run_now(job.id)
    await scheduler.wait_idle()
    await scheduler.stop()
    assert recorder.fired == [
        slot_key(job, datetime(2026, 11, 21, 9, 0, second, tzinfo=UTC)) for second in (20, 21)
    ]


async def test_errors_name_the_job_and_why(db: Database) -> None:
    clock = VirtualClock(START)
    store = JobStore(db, clock)
    schedule = cron_schedule("0 * * * *", "UTC")
    job = await store.create(conversation=CONV, creator_id="user-1", name="digest", schedule=schedule)

    with pytest.raises(JobError, match="no job 'nope'"):
        await store.pause("nope", reason="x")
    with pytest.raises(JobError, match=f"job '{job.id}' \\(digest\\) is not paused"):
        await store.resume(job.id)
    await store.pause(job.id, reason="holiday")
    with pytest.raises(JobError, match="is already paused \\(holiday\\)"):
        await store.pause(job.id, reason="again")
    with pytest.raises(JobError, match="is paused \\(holiday\\); resume it first"):
        await store.run_now(job.id)
    with pytest.raises(JobError, match="belongs to someone else"):
        await store.resume(job.id, creator_id="user-2")
    with pytest.raises(JobError, match=r"no active job .* in this conversation"):
        await store.resume(job.id, conversation="c2c:someone-else")
    await store.end(job.id, reason="cancelled")
    with pytest.raises(JobError, match="has already ended \\(cancelled\\)"):
        await store.run_now(job.id)
    with pytest.raises(JobError, match="has already ended \\(cancelled\\)"):
        await store.resume(job.id)


async def test_a_one_shot_whose_time_passed_while_paused_ends_on_resume(db: Database) -> None:
    clock = VirtualClock(START)
    store = JobStore(db, clock)
    job = await store.create(
        conversation=CONV,
        creator_id=None,
        name="reminder",
        schedule=once_schedule("2026-11-21T09:05:00+00:00", "UTC", clock.now()),
    )
    await store.pause(job.id, reason="")
    await clock.advance(3600)
    resumed = await store.resume(job.id)
    assert not resumed.active and resumed.state == "ended (missed while paused)"


async def test_next_firings_follow_the_schedule(db: Database) -> None:
    clock = VirtualClock(START)
    store = JobStore(db, clock)
    quarterly = await store.create(
        conversation=CONV, creator_id=None, name="q", schedule=cron_schedule("*/15 * * * *", "Asia/Shanghai")
    )
    once = await store.create(
        conversation=CONV,
        creator_id=None,
        name="o",
        schedule=once_schedule("2026-11-22T08:00:00", "Asia/Shanghai", clock.now()),
    )
    assert next_firings(quarterly) == [
        datetime(2026, 11, 21, 9, minute, tzinfo=UTC) for minute in (15, 30, 45)
    ] + [datetime(2026, 11, 21, 10, minute, tzinfo=UTC) for minute in (0, 15)]
    assert next_firings(quarterly, 2) == [datetime(2026, 11, 21, 9, m, tzinfo=UTC) for m in (15, 30)]
    assert next_firings(once) == [datetime(2026, 11, 22, 0, 0, tzinfo=UTC)]
    assert next_firings(await store.end(once.id, reason="cancelled")) == []
