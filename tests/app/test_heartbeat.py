"""Acceptance: "启用一个心跳任务,每分钟向我发送一次心跳信号" → the model schedules `* * * * *` →
ten virtual minutes give ten heartbeats, also across a restart at minute five; /jobs lists the
job and /cancel stops it."""

from __future__ import annotations

import re

from tests.app.herald_harness import Harness, harness

USER = "user-hb"


async def minutes(h: Harness, count: int, delivered_before: int) -> int:
    for minute in range(1, count + 1):
        await h.advance(60)
        await h.wait_delivered("c2c", USER, delivered_before + minute)
        await h.idle()
    return delivered_before + count


async def test_heartbeat_job_survives_restart_and_can_be_cancelled(db_url: str) -> None:
    async with harness(db_url) as h:
        await h.user_says(USER, "启用一个心跳任务,每分钟向我发送一次心跳信号")
        entries = await h.wait_delivered("c2c", USER, 1)
        await h.idle()
        assert entries[0]["content"] == "已启用心跳任务，每分钟一次。"
        assert h.script.results[0].startswith("created: [")

        total = await minutes(h, 5, 1)
        await h.restart()
        total = await minutes(h, 5, total)

        entries = await h.delivered("c2c", USER)
        heartbeats = [e for e in entries if e["content"] == "💓 心跳"]
        assert len(heartbeats) == 10
        assert len(entries) == 11

        await h.user_says(USER, "/jobs")
        entries = await h.wait_delivered("c2c", USER, 12)
        listing = entries[-1]["content"]
        assert "心跳" in listing and "* * * * *" in listing
        match = re.search(r"\[([0-9a-f]+)\]", listing)
        assert match is not None

        await h.user_says(USER, f"/cancel {match.group(1)}")
        entries = await h.wait_delivered("c2c", USER, 13)
        assert entries[-1]["content"].startswith("已取消任务")
        await h.idle()

        assert h.herald is not None and h.herald.scheduler is not None
        fired = h.herald.scheduler.fired
        for _ in range(3):
            await h.advance(60)
            await h.idle()
        assert h.herald.scheduler.fired == fired
        assert len(await h.delivered("c2c", USER)) == 13
        assert await h.errors() == []
