"""Agent turns through the whole stack: ordering per conversation, concurrency across
conversations, history and /reset, resuming a stopped turn without re-asking the model."""

from __future__ import annotations

import asyncio

from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo

from tests.app.herald_harness import WAIT_S, Script, harness, last_user_text, tool_results


class Gated(Script):
    """Blocks the model on turns whose text contains 'wait' until `gate` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()
        self.seen: list[list[str]] = []  # the user texts the model saw, per request

    async def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.seen.append(
            [
                str(part.content)
                for message in messages
                if isinstance(message, ModelRequest)
                for part in message.parts
                if isinstance(part, UserPromptPart)
            ]
        )
        if "wait" in last_user_text(messages) and not tool_results(messages[-1]):
            self.waiting.set()
            await self.gate.wait()
        return await super().respond(messages, info)


async def test_turns_in_one_conversation_run_in_order_others_concurrently(db_url: str) -> None:
    script = Gated()
    async with harness(db_url, script) as h:
        await h.user_says("alice", "please wait")
        async with asyncio.timeout(WAIT_S):
            await script.waiting.wait()
        await h.user_says("alice", "second")
        await h.user_says("bob", "hello")
        # Bob's turn completes while Alice's first turn is still waiting for the model.
        bob = await h.wait_delivered("c2c", "bob", 1)
        assert bob[0]["content"] == "echo: hello"
        assert "second" not in script.calls
        script.gate.set()
        alice = await h.wait_delivered("c2c", "alice", 2)
        assert [e["content"] for e in alice] == ["echo: please wait", "echo: second"]


async def test_history_is_kept_per_conversation_and_reset_clears_it(db_url: str) -> None:
    script = Gated()
    async with harness(db_url, script) as h:
        await h.user_says("carol", "one")
        await h.wait_delivered("c2c", "carol", 1)
        await h.user_says("dave", "elsewhere")
        await h.wait_delivered("c2c", "dave", 1)
        await h.user_says("carol", "two")
        await h.wait_delivered("c2c", "carol", 2)
        assert script.seen[-1] == ["one", "two"]

        await h.user_says("carol", "/reset")
        await h.wait_delivered("c2c", "carol", 3)
        await h.user_says("carol", "three")
        await h.wait_delivered("c2c", "carol", 4)
        assert script.seen[-1] == ["three"]


async def test_history_budget_drops_the_oldest_turns(db_url: str) -> None:
    script = Gated()
    async with harness(db_url, script) as h:
        assert h.herald is not None
        h.config.agent.history_turns = 2
        await h.restart()
        for n, word in enumerate(["a", "b", "c", "d"], start=1):
            await h.user_says("erin", word)
            await h.wait_delivered("c2c", "erin", n)
        assert script.seen[-1] == ["b", "c", "d"]


async def test_a_stopped_turn_resumes_without_asking_the_model_again(db_url: str) -> None:
    class StopsAfterTools(Script):
        def __init__(self) -> None:
            super().__init__()
            self.reached_final_step = asyncio.Event()
            self.hold = True
            self.phases: list[str] = []

        async def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            self.phases.append("after tools" if tool_results(messages[-1]) else "first")
            if tool_results(messages[-1]) and self.hold:
                self.reached_final_step.set()
                await asyncio.Event().wait()  # never answers: Herald is stopped here
            return await super().respond(messages, info)

    script = StopsAfterTools()
    async with harness(db_url, script) as h:
        await h.user_says("frank", "向我连续发送3条消息，测试用")
        async with asyncio.timeout(WAIT_S):
            await script.reached_final_step.wait()
        await h.wait_delivered("c2c", "frank", 3)
        await h.stop()

        script.hold = False
        await h.start()
        entries = await h.wait_delivered("c2c", "frank", 4)
        await h.idle()
        assert [e["content"] for e in entries] == ["测试消息 1", "测试消息 2", "测试消息 3", "done: 3 sent"]
        # Step 1 (the three tool calls) was answered once; step 2 was asked, interrupted, asked again.
        assert script.phases == ["first", "after tools", "after tools"]
        assert script.results == ["delivered (passive)"] * 3  # shown to the model that answered step 2
        assert await h.errors() == []


async def test_empty_final_text_sends_nothing(db_url: str) -> None:
    class Silent(Script):
        def first(self, text: str) -> ModelResponse:
            return ModelResponse(parts=[TextPart("  ")])

    async with harness(db_url, Silent()) as h:
        await h.user_says("gina", "hi")
        await h.user_says("gina", "/help")
        entries = await h.wait_delivered("c2c", "gina", 1)
        await h.idle()
        assert len(entries) == 1 and entries[0]["content"].startswith("可用命令")


async def test_a_redelivered_message_after_a_restart_is_dropped_durably(db_url: str) -> None:
    async with harness(db_url) as h:
        await h.user_says("quinn", "hello")
        await h.wait_delivered("c2c", "quinn", 1)
        await h.idle()
        herald = await h.restart()  # the adapter's in-memory dedup is gone; the store remembers
        assert herald.dispatcher is not None
        data = await h.call("POST", "/_sim/faults", {"kind": "redeliver_last"})
        assert data["event_id"]
        async with asyncio.timeout(WAIT_S):
            while herald.dispatcher.duplicates == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await h.idle()
        assert len(await h.delivered("c2c", "quinn")) == 1
        assert h.script.calls == ["hello"]
