"""A long conversation is summarized by the model, not just cut: once enough turns have left the
history budget, one request folds them into the conversation's summary, which every later request
carries and `/status` shows; `/reset` forgets it too."""

from __future__ import annotations

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo

from herald.agent.history import SUMMARY_BATCH
from herald.config import HeraldConfig
from tests.app.herald_harness import Script, harness


class Summarizes(Script):
    def __init__(self) -> None:
        super().__init__()
        self.summary_requests: list[str] = []

    async def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if (info.instructions or "").startswith("You keep the memory of a chat"):
            self.summary_requests.append(str(messages[-1].parts[0].content))  # type: ignore[union-attr]
            return ModelResponse(parts=[TextPart("SUMMARY: 用户叫小明，养了一只叫豆豆的猫。")])
        return await super().respond(messages, info)


def short_history(config: HeraldConfig) -> None:
    config.agent.history_turns = 2


async def test_turns_past_the_budget_are_summarized_and_the_summary_is_in_the_next_request(
    db_url: str,
) -> None:
    script = Summarizes()
    async with harness(db_url, script, configure=short_history) as h:
        turns_before_summary = 2 + SUMMARY_BATCH  # the window, then a batch past it
        for i in range(1, turns_before_summary + 2):
            await h.user_says("s1", f"第{i}条：我叫小明" if i == 1 else f"第{i}条")
            await h.wait_delivered("c2c", "s1", i)
        latest = script.instructions[-1] or ""
        await h.user_says("s1", "/status")
        status = (await h.wait_delivered("c2c", "s1", turns_before_summary + 2))[-1]["content"]
        await h.user_says("s1", "/reset")
        await h.wait_delivered("c2c", "s1", turns_before_summary + 3)
        await h.user_says("s1", "还记得我吗")
        await h.wait_delivered("c2c", "s1", turns_before_summary + 4)
        after_reset = script.instructions[-1] or ""
    assert len(script.summary_requests) == 1
    folded = script.summary_requests[0]
    assert "User: 第1条：我叫小明" in folded and "Assistant: echo: 第1条：我叫小明" in folded
    assert "第6条" not in folded  # turns 6 and 7 are still in the window
    assert "Earlier in this conversation (your summary): SUMMARY: 用户叫小明" in latest
    assert f"summary of {SUMMARY_BATCH} earlier turns: SUMMARY: 用户叫小明" in status
    assert "your summary" not in after_reset
