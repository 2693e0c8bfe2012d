"""`[scheduler] min_interval_s` holds for the agent's `future_task` too, not only for `/every`:
a schedule that runs more often is refused, and the model is told why."""

from __future__ import annotations

from herald.sim.app import serve
from herald.sim.settings import SimSettings
from tests.app.herald_harness import Harness, Script


async def test_future_task_refuses_a_schedule_below_the_minimum(db_url: str) -> None:
    async with serve(SimSettings(port=0)) as sim:
        h = Harness(sim, db_url, Script())
        h.config.scheduler.min_interval_s = 300  # the script asks for cron "* * * * *": every minute
        await h.start()
        try:
            await h.user_says("user-1", "启用一个心跳任务,每分钟向我发送一次心跳信号")
            await h.wait_delivered("c2c", "user-1", 1)
            await h.idle()
            (result,) = h.script.results
            assert result.startswith("error:") and "min_interval_s" in result, result
            assert "1m" in result and "5m" in result, result
            assert h.herald is not None and h.herald.jobs is not None
            assert await h.herald.jobs.list_jobs() == []
        finally:
            await h.close()
