"""Scheduled jobs: persisted, cron / one-shot / interval, time-zone aware, coalescing, on the Clock."""

from herald.scheduler.jobs import Job, JobError, JobStore
from herald.scheduler.schedule import (
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
from herald.scheduler.service import FireHandler, Scheduler, slot_key

__all__ = [
    "FireHandler",
    "Job",
    "JobError",
    "JobStore",
    "Schedule",
    "ScheduleError",
    "Scheduler",
    "cron_schedule",
    "format_interval",
    "interval_schedule",
    "next_after",
    "once_schedule",
    "parse_interval",
    "shortest_gap",
    "slot_key",
]
