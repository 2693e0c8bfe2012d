"""Two Herald instances on one PostgreSQL database behind a load balancer that hands a user's
messages alternately to one and the other (as a webhook proxy may): one conversation's turns are
stored by both. They still run one at a time, in the order the messages came, each exactly once."""

from __future__ import annotations

import asyncio

import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo
from sqlalchemy import func, select

from herald.app import Herald
from herald.core.events import InboundEvent, InboundMessage
from herald.store.tables.agent import AgentTurn
from tests.app.herald_harness import WAIT_S, Script, harness

USERS = [f"shared-{i}" for i in range(4)]
MESSAGES = 8


class SlowScript(Script):
    """Answers after a pause, so a user's next messages arrive while a turn runs."""

    async def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        await asyncio.sleep(0.05)
        return await super().respond(messages, info)


async def test_turns_stored_by_two_instances_run_in_order_once(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("several instances share a database only on PostgreSQL (SQLite is one process)")
    async with harness(db_url, SlowScript(), delivery={"instance": "first"}) as h:
        other_script = SlowScript()
        config = h.config.model_copy(deep=True)
        config.delivery.instance = "second"
        assert config.qq is not None
        # Its own shard (and so its own gateway session): private chats reach it only through the
        # balancer below.
        config.qq.shard = (1, 2)
        other = Herald(config, model=other_script.choice(), clock=h.clock, rate_limits=False)
        await other.start()
        try:
            async with asyncio.timeout(WAIT_S):
                await other.wait_ready()
            assert h.herald is not None and h.herald.dispatcher is not None
            assert other.dispatcher is not None
            first, second = h.herald.dispatcher, other.dispatcher
            db = h.herald.db
            assert db is not None

            async def balance(event: InboundEvent) -> None:
                """Odd messages to the second instance, the rest to the first."""
                odd = isinstance(event, InboundMessage) and int(event.content.split()[-1]) % 2 == 1
                await (second if odd else first).sink(event)

            # The first instance's gateway receives every event; the balancer spreads them.
            assert h.herald.platforms is not None
            h.herald.platforms.members["qq"]._sink = balance  # type: ignore[attr-defined]
            for n in range(MESSAGES):
                for user in USERS:
                    await h.user_says(user, f"{user} says {n}")
            for user in USERS:
                await h.wait_delivered("c2c", user, MESSAGES)
            await h.idle()
        finally:
            await other.stop()
        for user in USERS:
            contents = [entry["content"] for entry in await h.delivered("c2c", user)]
            assert contents == [f"echo: {user} says {n}" for n in range(MESSAGES)], contents
        # Each turn ran once (the model was asked once per message), by one instance or the other.
        assert len(h.script.calls) + len(other_script.calls) == len(USERS) * MESSAGES
        async with db.session() as session:
            unfinished = await session.scalar(
                select(func.count()).select_from(AgentTurn).where(AgentTurn.status != "done")
            )
        assert unfinished == 0
