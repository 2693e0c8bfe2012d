"""Acceptance on the second platform: the seed report, the heartbeat and a QQ conversation beside
a OneBot one, in one Herald process, each platform behind its own emulator over real sockets."""

from __future__ import annotations

from tests.app.herald_harness import harness

FRIEND = "20001"


async def test_seed_report_on_onebot(db_url: str) -> None:
    async with harness(db_url, onebot=True) as h:
        await h.friend_says(FRIEND, "向我连续发送3条消息，测试用")
        entries = await h.wait_onebot_sent("private", FRIEND, 4)
        await h.idle()

        assert [e["text"] for e in entries] == ["测试消息 1", "测试消息 2", "测试消息 3", "done: 3 sent"]
        assert all(e["action"] == "send_private_msg" for e in entries)
        assert h.script.results == ["delivered (send_private_msg)"] * 3


async def test_a_qq_and_a_onebot_conversation_in_one_process(db_url: str) -> None:
    async with harness(db_url, onebot=True) as h:
        await h.user_says("qq-user", "hello from QQ")
        await h.friend_says(FRIEND, "hello from OneBot")
        qq = await h.wait_delivered("c2c", "qq-user", 1)
        onebot = await h.wait_onebot_sent("private", FRIEND, 1)
        await h.idle()

        # Each answer went back the way its message came, and nowhere else.
        assert [e["content"] for e in qq] == ["echo: hello from QQ"]
        assert [e["text"] for e in onebot] == ["echo: hello from OneBot"]
        assert await h.onebot_sent("private", "qq-user") == []
        assert await h.errors() == []


async def test_heartbeat_on_onebot_survives_restart(db_url: str) -> None:
    async with harness(db_url, onebot=True) as h:
        await h.friend_says(FRIEND, "启用一个心跳任务,每分钟向我发送一次心跳信号")
        entries = await h.wait_onebot_sent("private", FRIEND, 1)
        await h.idle()
        assert entries[0]["text"] == "已启用心跳任务，每分钟一次。"

        async def minute(total: int) -> int:
            await h.advance(60)
            await h.wait_onebot_sent("private", FRIEND, total + 1)
            await h.idle()
            return total + 1

        total = 1
        for _ in range(3):
            total = await minute(total)
        await h.restart()
        for _ in range(3):
            total = await minute(total)

        texts = [e["text"] for e in await h.onebot_sent("private", FRIEND)]
        assert texts.count("💓 心跳") == 6
        assert len(texts) == 7
