"""A turn that crashes every time it runs (a poison turn) is ended after a bounded number of
crashes, with the short error reply to the user and an ERROR log naming the cause, and its
conversation carries on."""

from __future__ import annotations

import pytest

from herald.agent.turns import FAILED, Turn
from tests.app.herald_harness import harness


async def test_a_poison_turn_is_ended_with_a_reply_and_the_conversation_carries_on(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with harness(db_url) as h:
        assert h.herald is not None and h.herald.dispatcher is not None and h.herald.turns is not None
        runner = h.herald.dispatcher.runner
        run = runner.run
        runs: list[str] = []

        async def crashing(turn: Turn) -> None:
            runs.append(turn.content)
            if turn.content == "poison":
                raise RuntimeError("a bug this turn always meets")
            await run(turn)

        runner.run = crashing  # type: ignore[method-assign]
        await h.user_says("zoe", "poison")
        await h.user_says("zoe", "hello")
        entries = await h.wait_delivered("c2c", "zoe", 2)
        await h.idle()
        assert [e["content"] for e in entries] == [h.config.agent.error_message, "echo: hello"]
        assert runs == ["poison"] * 3 + ["hello"]
        assert await h.herald.turns.pending() == []
        failed = [r for r in caplog.records if r.levelname == "ERROR" and "crashed 3 times" in r.getMessage()]
        assert len(failed) == 1 and "RuntimeError: a bug this turn always meets" in failed[0].getMessage()
        turn = await h.herald.turns.get(1)
        assert turn is not None and turn.status == FAILED
