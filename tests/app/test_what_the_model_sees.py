"""What the model reads of a user's message, over the emulator: a quote brings the quoted text
(the user's own earlier message, or one Herald sent); a voice message its transcript; a group
message who wrote it."""

from __future__ import annotations

from tests.app.herald_harness import harness


async def test_a_quote_brings_the_quoted_text_into_the_turn(db_url: str) -> None:
    async with harness(db_url) as h:
        first = await h.call("POST", "/_sim/c2c/q1/messages", {"content": "我的猫叫豆豆"})
        answer = (await h.wait_delivered("c2c", "q1", 1))[0]
        await h.call(
            "POST", "/_sim/c2c/q1/messages", {"content": "你刚才说什么？", "quote": answer["ref_idx"]}
        )
        await h.wait_delivered("c2c", "q1", 2)
        await h.call("POST", "/_sim/c2c/q1/messages", {"content": "它几岁？", "quote": first["ref_idx"]})
        await h.wait_delivered("c2c", "q1", 3)
        await h.call("POST", "/_sim/c2c/q1/messages", {"content": "这个呢", "quote": "REFIDX_unknown"})
        await h.wait_delivered("c2c", "q1", 4)
        seen = h.script.calls[-3:]
    assert seen[0] == "[quoting your message: «echo: 我的猫叫豆豆»]\n你刚才说什么？"
    assert seen[1] == "[quoting a message by q1: «我的猫叫豆豆»]\n它几岁？"
    assert seen[2] == "[quoting an earlier message Herald does not have]\n这个呢"


async def test_a_voice_message_reaches_the_model_as_its_transcript(db_url: str) -> None:
    voice = {
        "content_type": "voice",
        "filename": "a.silk",
        "url": "https://multimedia.nt.qq.com.cn/a.silk",
        "asr_refer_text": "明天会下雨吗",
    }
    photo = {"content_type": "image/png", "filename": "cat.png", "url": "https://multimedia.nt.qq.com.cn/c"}
    async with harness(db_url) as h:
        await h.call("POST", "/_sim/c2c/v1/messages", {"content": "", "attachments": [voice, photo]})
        await h.wait_delivered("c2c", "v1", 1)
    assert h.script.calls[-1] == "[voice message: 明天会下雨吗]\n[attachments: cat.png]"


async def test_a_group_turn_knows_who_is_speaking(db_url: str) -> None:
    async with harness(db_url) as h:
        await h.member_says("G1", "alice", "大家好")
        await h.wait_delivered("group", "G1", 1)
        await h.member_says("G1", "bob", "你好")
        await h.wait_delivered("group", "G1", 2)
        calls, instructions = h.script.calls[-2:], h.script.instructions[-1] or ""
    assert calls == ["[alice] 大家好", "[bob] 你好"]
    assert "Each message starts with [who wrote it]." in instructions
