"""Acceptance: in a group, the agent's sends after the 5-minute passive window are routed by the
reply ledger (proactive in 2026 mode, undeliverable with the reason where proactive is withdrawn),
and the model is shown the real outcome of each send."""

from __future__ import annotations

import pytest

from tests.app.herald_harness import harness

GROUP = "group-1"


@pytest.mark.parametrize(("mode", "outcome"), [("2026", "delivered (proactive)"), ("2025", "not delivered")])
async def test_sends_after_the_group_window_follow_the_ledger(db_url: str, mode: str, outcome: str) -> None:
    async with harness(db_url, delivery={"platform_mode": mode}, mode=mode) as h:
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

        # Minutes 5-7: the window has closed; the ledger decides.
        for _ in range(3):
            await h.advance(60)
            await h.idle()
        late = h.script.results[5:]
        assert len(late) == 3
        assert all(result.startswith(outcome) for result in late), late
        delivered = await h.delivered("group", GROUP)
        if mode == "2026":
            assert len(delivered) == 8
            assert await h.errors() == []
        else:
            assert len(delivered) == 5
            assert all("proactive messages are not offered" in result for result in late), late
