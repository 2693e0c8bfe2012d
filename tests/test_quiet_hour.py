"""Tests start the emulator at noon in Beijing (`tests.sim_control.running_sim`), twelve hours from
the midnight at which daily and monthly quotas reset, so no test depends on the hour it runs at."""

from __future__ import annotations

from datetime import datetime

from herald.sim.clock import BEIJING
from tests.sim_control import QUIET_HOUR, running_sim, seconds_to_quiet_hour


def test_from_just_before_midnight_the_clock_moves_to_the_next_noon() -> None:
    last_minute_of_the_month = datetime(2026, 11, 30, 23, 59, 30, tzinfo=BEIJING).timestamp()
    assert seconds_to_quiet_hour(last_minute_of_the_month) == 12 * 3600 + 30
    noon = datetime(2026, 12, 1, 12, tzinfo=BEIJING).timestamp()
    assert seconds_to_quiet_hour(noon) == 0
    assert seconds_to_quiet_hour(noon + 1) == 24 * 3600 - 1


async def test_running_sim_starts_at_noon_in_beijing() -> None:
    async with running_sim() as sim:
        started = datetime.fromtimestamp(sim.state.clock.time(), BEIJING)
    assert started.hour == QUIET_HOUR
