"""Pure schedule arithmetic: cron in a time zone, one-shot, intervals, coalescing, parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from herald.scheduler import (
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

T0 = datetime(2026, 11, 21, 1, 0, 30, tzinfo=UTC)  # 09:00:30 in Shanghai


def test_every_minute_cron_is_the_next_whole_minute() -> None:
    schedule = cron_schedule("* * * * *", "Asia/Shanghai")
    assert next_after(schedule, T0) == datetime(2026, 11, 21, 1, 1, tzinfo=UTC)


def test_cron_hours_are_read_in_the_job_time_zone() -> None:
    schedule = cron_schedule("0 9 * * *", "Asia/Shanghai")
    # 09:00 Shanghai is 01:00 UTC; T0 is just after it, so the next is tomorrow.
    assert next_after(schedule, T0) == datetime(2026, 11, 22, 1, 0, tzinfo=UTC)
    assert next_after(cron_schedule("0 9 * * *", "UTC"), T0) == datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def test_missed_slots_coalesce_into_one_next_slot_after_now() -> None:
    schedule = cron_schedule("*/5 * * * *", "UTC")
    slot = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
    back_after_downtime = slot + timedelta(hours=3, minutes=2)
    # The service fires `slot` once, then asks for the first slot after now: three hours of
    # missed slots are not replayed.
    assert next_after(schedule, back_after_downtime) == datetime(2026, 11, 21, 4, 5, tzinfo=UTC)


def test_one_shot_runs_once_and_reads_naive_times_in_the_zone() -> None:
    schedule = once_schedule("2026-11-21T10:00:00", "Asia/Shanghai", T0)
    assert schedule.run_at == datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    assert next_after(schedule, T0) == schedule.run_at
    assert next_after(schedule, schedule.run_at) is None


def test_one_shot_in_the_past_is_refused() -> None:
    with pytest.raises(ScheduleError, match="in the past"):
        once_schedule("2026-11-21T08:00:00+08:00", "Asia/Shanghai", T0)


def test_interval_slots_count_from_the_anchor() -> None:
    schedule = interval_schedule(90, "UTC", T0)
    assert next_after(schedule, T0) == T0 + timedelta(seconds=90)
    assert next_after(schedule, T0 + timedelta(seconds=200)) == T0 + timedelta(seconds=270)


@pytest.mark.parametrize(
    ("text", "seconds"), [("1m", 60), ("30s", 30), ("1h30m", 5400), ("2d", 172800), ("1H", 3600)]
)
def test_parse_interval(text: str, seconds: int) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "m", "5 minutes", "1x"])
def test_parse_interval_refuses_garbage(text: str) -> None:
    with pytest.raises(ScheduleError):
        parse_interval(text)


@pytest.mark.parametrize("text", ["* * * *", "61 * * * *", "not a cron at all"])
def test_bad_cron_is_refused(text: str) -> None:
    with pytest.raises(ScheduleError):
        cron_schedule(text, "UTC")


def test_format_interval() -> None:
    assert format_interval(5400) == "1h30m"
    assert format_interval(60) == "1m"


def test_shortest_gap_of_each_kind() -> None:
    now = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
    assert shortest_gap(cron_schedule("* * * * *", "UTC"), now) == 60
    assert shortest_gap(cron_schedule("0,1 9 * * *", "Asia/Shanghai"), now) == 60  # not the daily gap
    assert shortest_gap(cron_schedule("0 9 * * 1-5", "UTC"), now) == 86400
    assert shortest_gap(interval_schedule(90, "UTC", now), now) == 90
    assert shortest_gap(once_schedule("2026-11-22T00:00:00", "UTC", now), now) is None


@pytest.mark.parametrize("text", ["0 0 31 2 *", "0 0 30 2 *", "* * 31 4,6,9,11 *"])
def test_cron_that_never_matches_a_date_is_refused(text: str) -> None:
    with pytest.raises(ScheduleError, match="never"):
        cron_schedule(text, "UTC")


def test_cron_longer_than_the_store_keeps_is_refused() -> None:
    with pytest.raises(ScheduleError, match="long"):
        cron_schedule(",".join(str(m) for m in range(60)) + " * * * *", "UTC")


def test_a_stored_cron_with_no_next_date_is_a_schedule_error() -> None:
    # Created before creation checked it (or by hand): the scheduler must get an error it handles.
    with pytest.raises(ScheduleError, match="never"):
        next_after(Schedule("cron", "UTC", cron="0 0 31 2 *"), datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize("seconds", [0, 30, 366 * 86400, 99999999999999 * 86400])
def test_interval_outside_the_allowed_range_names_the_range(seconds: int) -> None:
    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ScheduleError, match="allowed: 1m to 365d"):
        interval_schedule(seconds, "UTC", anchor, minimum_s=60)


def test_one_shot_at_the_edge_of_time_is_refused_not_crashed() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for text in ("0001-01-01T00:00:00", "9999-12-31T23:59:59-23:00"):
        with pytest.raises(ScheduleError):
            once_schedule(text, "Asia/Shanghai", now)
