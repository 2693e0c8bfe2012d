"""Scheduled jobs: persisted, cron / one-shot / interval, time-zone aware, coalescing, on the Clock.

The job and schedule types live in core (`herald.core.jobs`, `herald.core.schedule`), where the agent
and the commands meet them; they are re-exported here for the scheduler's own callers."""

from herald.core.jobs import Job, JobBook, JobError, describe_job, next_firings
from herald.core.schedule import (
    Schedule,
    ScheduleError,
    cron_schedule,
    format_interval,
    interval_schedule,
    next_after,
    once_schedule,
    parse_interval,
    shortest_gap,
)
from herald.scheduler.jobs import JobStore
from herald.scheduler.service import FireHandler, Leadership, Scheduler, slot_key

__all__ = [
    "FireHandler",
    "Job",
    "JobBook",
    "JobError",
    "JobStore",
    "Leadership",
    "Schedule",
    "ScheduleError",
    "Scheduler",
    "cron_schedule",
    "describe_job",
    "format_interval",
    "interval_schedule",
    "next_after",
    "next_firings",
    "once_schedule",
    "parse_interval",
    "shortest_gap",
    "slot_key",
]
