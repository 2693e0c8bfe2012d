"""Acceptance: the seed report, end to end through the sim. Three sends in one model response
plus the answer arrive as four messages, in order, with no error in the sim's request log."""

from __future__ import annotations

from tests.app.herald_harness import harness


async def test_three_sends_in_one_response_then_the_answer(db_url: str) -> None:
    async with harness(db_url) as h:
        await h.user_says("user-seed", "向我连续发送3条消息，测试用")
        entries = await h.wait_delivered("c2c", "user-seed", 4)
        await h.idle()

        assert [e["content"] for e in entries] == ["测试消息 1", "测试消息 2", "测试消息 3", "done: 3 sent"]
        assert await h.errors() == []
        assert h.script.results == ["delivered (passive)"] * 3
