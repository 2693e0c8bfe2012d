"""When a job runs: cron expressions, one-shot times and fixed intervals, in a job's time zone.

Pure functions of time; the service decides when to look. `next_after(spec, t)` is the first slot
strictly after `t`, so firing a missed slot and asking for the next one from *now* coalesces every
slot missed during downtime into the one firing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

Kind = Literal["cron", "once", "interval"]

MAX_INTERVAL_S = 365 * 86400  # the longest interval a job may have
MAX_CRON_LENGTH = 120  # the stored column's length


class ScheduleError(ValueError):
    """A schedule the user or the model gave cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class Schedule:
    kind: Kind
    timezone: str
    cron: str | None = None
    run_at: datetime | None = None  # UTC, for `once`
    interval_s: int | None = None  # for `interval`
    anchor: datetime | None = None  # UTC start of an interval's slots

    def describe(self) -> str:
        if self.kind == "cron":
            return f"cron '{self.cron}' ({self.timezone})"
        if self.kind == "once":
            assert self.run_at is not None
            local = self.run_at.astimezone(ZoneInfo(self.timezone))
            return f"once at {local:%Y-%m-%d %H:%M:%S} ({self.timezone})"
        return f"every {format_interval(self.interval_s or 0)}"


def cron_schedule(expression: str, timezone: str) -> Schedule:
    expression = " ".join(expression.split())
    if len(expression.split()) != 5:
        raise ScheduleError(f"cron expression needs 5 fields (minute hour day month weekday): {expression!r}")
    if len(expression) > MAX_CRON_LENGTH:
        raise ScheduleError(
            f"cron expression is too long ({len(expression)} characters, at most {MAX_CRON_LENGTH})"
        )
    try:
        croniter(expression, datetime.now(UTC))
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise ScheduleError(f"invalid cron expression {expression!r}: {exc}") from None
    schedule = Schedule("cron", timezone, cron=expression)
    next_after(schedule, datetime.now(UTC))  # one that parses may still never match a date
    return schedule


def once_schedule(run_at: str | datetime, timezone: str, now: datetime) -> Schedule:
    """A one-shot time; an ISO string without an offset is read in `timezone`."""
    if isinstance(run_at, str):
        try:
            parsed = datetime.fromisoformat(run_at.strip())
        except ValueError:
            raise ScheduleError(f"run_at is not an ISO 8601 time: {run_at!r}") from None
    else:
        parsed = run_at
    try:
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=ZoneInfo(timezone))
        parsed = parsed.astimezone(UTC)
    except OverflowError:
        raise ScheduleError(f"run_at {run_at!s} is out of range (years 1 to 9999 in UTC)") from None
    if parsed <= now:
        raise ScheduleError(f"run_at {parsed.isoformat()} is in the past (now {now.isoformat()})")
    return Schedule("once", timezone, run_at=parsed)


def interval_schedule(seconds: int, timezone: str, anchor: datetime, *, minimum_s: int = 1) -> Schedule:
    if not minimum_s <= seconds <= MAX_INTERVAL_S:
        shortest, longest = format_interval(minimum_s), format_interval(MAX_INTERVAL_S)
        limit = f"shorter than {shortest}" if seconds < minimum_s else f"longer than {longest}"
        raise ScheduleError(
            f"interval {format_interval(seconds)} is {limit} (allowed: {shortest} to {longest})"
        )
    return Schedule("interval", timezone, interval_s=seconds, anchor=anchor.astimezone(UTC))


def next_after(schedule: Schedule, after: datetime) -> datetime | None:
    """The first slot strictly after `after` (UTC), or None when the schedule has no more slots.

    Raises `ScheduleError` for a schedule that cannot be followed (a cron expression that matches
    no date, such as February 31st; a slot past the year 9999).
    """
    after = after.astimezone(UTC)
    if schedule.kind == "once":
        assert schedule.run_at is not None
        return schedule.run_at if schedule.run_at > after else None
    try:
        if schedule.kind == "interval":
            assert schedule.interval_s and schedule.anchor is not None
            if after < schedule.anchor:
                return schedule.anchor
            periods = int((after - schedule.anchor).total_seconds() // schedule.interval_s) + 1
            return schedule.anchor + timedelta(seconds=periods * schedule.interval_s)
        assert schedule.cron is not None
        local = after.astimezone(ZoneInfo(schedule.timezone))
        following: datetime = croniter(schedule.cron, local).get_next(datetime)
    except CroniterBadDateError:
        raise ScheduleError(f"cron expression {schedule.cron!r} never matches a date") from None
    except (CroniterError, ValueError, KeyError, OverflowError) as exc:
        raise ScheduleError(f"{schedule.describe()} has no next slot: {type(exc).__name__}: {exc}") from None
    return following.astimezone(UTC)


def shortest_gap(schedule: Schedule, after: datetime, *, slots: int = 500) -> float | None:
    """The shortest time between two runs (s), over the next `slots` runs; None for a one-shot."""
    if schedule.kind == "once":
        return None
    if schedule.kind == "interval":
        return float(schedule.interval_s or 0)
    shortest: float | None = None
    previous = next_after(schedule, after)
    for _ in range(slots):
        if previous is None:
            break
        following = next_after(schedule, previous)
        if following is None:
            break
        gap = (following - previous).total_seconds()
        shortest = gap if shortest is None else min(shortest, gap)
        previous = following
    return shortest


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_INTERVAL = re.compile(r"(\d+)\s*([smhdw])", re.IGNORECASE)


def parse_interval(text: str) -> int:
    """`30s`, `1m`, `2h`, `1h30m`, `1d` → seconds."""
    compact = text.strip().lower()
    if not compact or _INTERVAL.sub("", compact).strip():
        raise ScheduleError(f"not an interval (try 30s, 5m, 1h30m, 1d): {text!r}")
    return sum(int(amount) * _UNITS[unit] for amount, unit in _INTERVAL.findall(compact))


def format_interval(seconds: int) -> str:
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            amount, seconds = divmod(seconds, size)
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0s"
