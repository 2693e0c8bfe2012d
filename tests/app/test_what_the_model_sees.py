"""What the model reads of a user's message, over the emulator: a quote brings the quoted text
(the user's own earlier message, or one Herald sent); a voice message its transcript; a group
message who wrote it; and a group's memory is its own, shared by its members, seen nowhere else."""

from __future__ import annotations

from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo

from tests.app.herald_harness import Script, harness


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
    assert h.script.calls[-1] == (
        "[voice message: 明天会下雨吗]\n[image: cat.png, https://multimedia.nt.qq.com.cn/c]"
    )


async def test_a_group_turn_knows_who_is_speaking(db_url: str) -> None:
    async with harness(db_url) as h:
        await h.member_says("G1", "alice", "大家好")
        await h.wait_delivered("group", "G1", 1)
        await h.member_says("G1", "bob", "你好")
        await h.wait_delivered("group", "G1", 2)
        calls, instructions = h.script.calls[-2:], h.script.instructions[-1] or ""
    assert calls == ["[alice] 大家好", "[bob] 你好"]
    assert "Each message starts with [who wrote it]." in instructions


class RemembersAll(Script):
    """Records every request's whole message list, as text."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []

    async def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.requests.append(repr(messages))
        return await super().respond(messages, info)


async def test_a_groups_memory_is_its_own(db_url: str) -> None:
    script = RemembersAll()
    async with harness(db_url, script) as h:
        await h.member_says("GA", "alice", "我们群的暗号是蓝鲸")
        await h.wait_delivered("group", "GA", 1)
        await h.member_says("GB", "alice", "暗号是什么？")  # the same person, another group
        await h.wait_delivered("group", "GB", 1)
        await h.user_says("alice", "暗号是什么？")  # and in private
        await h.wait_delivered("c2c", "alice", 1)
        await h.member_says("GA", "bob", "暗号是什么？")  # another member of the first group
        await h.wait_delivered("group", "GA", 2)
    in_b, in_private, in_a = script.requests[1:]
    assert "蓝鲸" not in in_b and "蓝鲸" not in in_private
    assert "蓝鲸" in in_a  # the group's memory is the group's: every member's turns see it
