"""Acceptance: in a group, a heartbeat's sends after the 5-minute passive window are routed by the
reply ledger: proactive in 2026 mode; where proactive is withdrawn (2025) the group is told up
front how far it reaches, gets one notice on the last reply, and the job pauses. The model is
shown the real outcome of each send."""

from __future__ import annotations

from tests.app.herald_harness import harness

GROUP = "group-1"


async def test_sends_after_the_group_window_go_proactive_where_the_mode_allows(db_url: str) -> None:
    async with harness(db_url, rules={"platform_mode": "2026"}, mode="2026") as h:
        await h.member_says(GROUP, "member-1", "启用一个心跳任务,每分钟向我发送一次心跳信号")
        await h.wait_delivered("group", GROUP, 1)
        await h.idle()
        assert h.script.results == [h.script.results[0]] and h.script.results[0].startswith("created:")

        # Minutes 1-4: inside the window, the heartbeats are passive replies to the member's message.
        for minute in range(1, 5):
            await h.advance(60)
            await h.wait_delivered("group", GROUP, 1 + minute)
            await h.idle()
        assert h.script.results[1:] == ["delivered (passive)"] * 4

        # Minutes 5-7: the window has closed; the ledger goes proactive.
        for minute in range(5, 8):
            await h.advance(60)
            # Waited for as above: `idle` alone may return before the job has fired.
            await h.wait_delivered("group", GROUP, 1 + minute)
            await h.idle()
        assert h.script.results[5:] == ["delivered (proactive)"] * 3
        assert len(await h.delivered("group", GROUP)) == 8
        assert await h.errors() == []


async def test_where_nothing_can_follow_the_window_the_group_is_told_once_and_the_job_pauses(
    db_url: str,
) -> None:
    async with harness(db_url, rules={"platform_mode": "2025"}, mode="2025") as h:
        await h.member_says(GROUP, "member-1", "启用一个心跳任务,每分钟向我发送一次心跳信号")
        await h.wait_delivered("group", GROUP, 1)
        await h.idle()
        created = h.script.results[0]
        for _ in range(8):
            await h.advance(60)
            await h.idle()
        delivered = [e["content"] for e in await h.delivered("group", GROUP)]
        assert h.herald is not None and h.herald.jobs is not None
        (job,) = await h.herald.jobs.list_jobs(f"group:{GROUP}")
        refused = await h.errors()
    # Said up front: three heartbeats as replies, then the notice, then nothing.
    assert "the next 3 firings" in created and "then a notice that it stopped" in created
    assert h.script.results[1:] == ["delivered (passive)"] * 3
    assert delivered[1:4] == ["💓 心跳"] * 3
    assert delivered[4].startswith("（定时任务「心跳」已暂停") and len(delivered) == 5  # told once
    assert job.paused and refused == []  # no request the platform refused
