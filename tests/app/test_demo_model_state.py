"""`herald demo` keeps the emulator page's banner on the model's state: a failing model shows as
an error there, with the cause, while the user only sees the short apology."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo

from herald.cli.run import MODEL_NOTICE, show_model_state
from herald.sim.state import SimState
from tests.app.herald_harness import WAIT_S, Script, harness


class Flaky(Script):
    broken = False

    async def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if self.broken:
            raise ModelHTTPError(status_code=503, model_name="scripted", body={"error": "overloaded"})
        return await super().respond(messages, info)


async def notice(sim: SimState, level: str) -> dict[str, Any]:
    async with asyncio.timeout(WAIT_S):
        while True:
            found = sim.notices.get(MODEL_NOTICE)
            if found is not None and found["level"] == level:
                return found
            await asyncio.sleep(0.01)


async def test_the_demo_banner_follows_the_model_state(db_url: str) -> None:
    script = Flaky()
    async with harness(db_url, script) as h:
        assert h.herald is not None
        watcher = asyncio.create_task(show_model_state(h.herald, h.sim.state, every_s=0.01))
        try:
            assert (await notice(h.sim.state, "ok"))["text"] == "model scripted: ok"

            script.broken = True
            await h.user_says("lee", "hello")
            await h.wait_delivered("c2c", "lee", 1)
            failing = await notice(h.sim.state, "error")
            assert failing["text"].startswith("model scripted: failing: ModelHTTPError")
            assert "503" in failing["text"]

            script.broken = False
            await h.user_says("lee", "hello again")
            await h.wait_delivered("c2c", "lee", 2)
            await notice(h.sim.state, "ok")
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
