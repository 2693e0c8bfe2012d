"""A job's past runs as the console reads them, from Herald and the emulator over sockets: a send
job's run is the message it sent; an agent job's run is its turn with what the turn sent."""

from __future__ import annotations

import asyncio

import pytest

from herald.console.conversations import job_runs
from tests.app.herald_harness import WAIT_S, harness


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
async def test_run_now_of_a_send_job_shows_as_a_run_with_its_delivery(db_url: str) -> None:
    async with harness(db_url) as h:
        assert h.herald is not None and h.herald.jobs is not None and h.herald.db is not None
        await h.user_says("op3", "/every 1h 喝水")
        await h.wait_delivered("c2c", "op3", 1)
        [job] = await h.herald.jobs.list_jobs("c2c:op3")
        await h.herald.jobs.run_now(job.id)
        await h.herald.jobs.run_now(job.id)  # a double click: the same second, one run
        await h.wait_delivered("c2c", "op3", 2)
        await h.idle()
        # The emulator has the message; Herald writes the delivery down as the answer comes back.
        async with asyncio.timeout(WAIT_S):
            while (runs := await job_runs(h.herald.db, job.id, job.conversation))[0].outcome == "pending":  # noqa: ASYNC110 (a database row, no event to wait on)
                await asyncio.sleep(0.02)
        ran = await h.herald.jobs.get(job.id)
        delivered = [str(e["content"]) for e in await h.delivered("c2c", "op3")]
    assert delivered[1:] == ["喝水"]
    assert ran is not None and ran.runs == 1 and ran.next_run_at == job.next_run_at  # schedule kept
    assert [(run.turn_id, run.outcome) for run in runs] == [(None, "delivered")]
    assert [(d.state, d.origin) for d in runs[0].deliveries] == [("delivered", "job")]
