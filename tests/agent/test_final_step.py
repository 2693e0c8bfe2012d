"""A turn's final response, its reply's outbox row and the turn's end are one transaction:
all durable together before anything is sent, or none of them (the turn stays pending)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from herald.agent import AgentRunner, Toolbox, TurnStore
from herald.agent.turns import DONE, PENDING
from herald.config import AgentConfig
from herald.core.clock import SystemClock
from herald.scheduler import JobStore
from herald.store import Database
from herald.store.batch import Write


async def _answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart("the answer")])


class _Sender:
    """Commits `also` with a stand-in for the outbox row, which can be made to fail."""

    def __init__(self, db: Database, *, fail: bool) -> None:
        self.db = db
        self.fail = fail
        self.also_given = False

    async def enqueue(self, target: Any, segments: Any, *, also: Write | None = None, **kwargs: Any) -> Any:
        self.also_given = also is not None

        async def work(session: AsyncSession) -> None:
            if also is not None:
                await also.apply(session)
            if self.fail:
                await session.execute(text("SELECT * FROM no_such_table"))

        await self.db.writes.run(work)
        return None


@pytest.mark.parametrize("fail", [False, True])
async def test_the_final_step_commits_with_the_reply_or_not_at_all(db: Database, fail: bool) -> None:
    clock = SystemClock()
    turns = TurnStore(db, clock)
    sender = _Sender(db, fail=fail)
    runner = AgentRunner(
        model=FunctionModel(_answer),
        turns=turns,
        toolbox=Toolbox(sender, JobStore(db, clock), clock),
        sender=sender,
        clock=clock,
        config=AgentConfig(),
    )
    turn = await turns.record(conversation="c2c:alice", source_id="m1", kind="message", content="hi")
    assert turn is not None
    if fail:
        with pytest.raises(Exception):  # noqa: B017 (the driver's error for the missing table)
            await runner.run(turn)
    else:
        await runner.run(turn)
    assert sender.also_given
    stored = await turns.get(turn.id)
    assert stored is not None
    if fail:
        # Nothing of the final step is stored: a restart resumes the turn and asks again.
        assert stored.status == PENDING
        assert not any(isinstance(m, ModelResponse) for m in stored.messages)
    else:
        assert stored.status == DONE
        assert isinstance(stored.messages[-1], ModelResponse)
        assert stored.messages[-1].text == "the answer"
