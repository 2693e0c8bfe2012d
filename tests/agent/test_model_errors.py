"""When the model fails or times out, the user gets one short message and the operator a log
line with the cause; secrets never appear in the log."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo

from herald.config import AgentConfig
from tests.app.herald_harness import Script, harness


class Broken(Script):
    async def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise ModelHTTPError(status_code=503, model_name="scripted", body={"error": "upstream overloaded"})


class Hangs(Script):
    async def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_model_error_gives_the_user_one_short_message_and_the_operator_the_cause(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="herald.agent")
    async with harness(db_url, Broken()) as h:
        await h.user_says("ivy", "hello")
        entries = await h.wait_delivered("c2c", "ivy", 1)
        await h.idle()
        assert [e["content"] for e in entries] == [AgentConfig().error_message]
        secret = h.sim.state.settings.secret
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("herald.agent")]
    assert len(lines) == 1
    assert "ModelHTTPError" in lines[0] and "503" in lines[0]
    assert secret not in caplog.text


async def test_a_model_timeout_is_reported_the_same_way(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="herald.agent")
    async with harness(db_url, Hangs()) as h:
        h.config.llm.timeout_s = 0.2
        await h.restart()
        await h.user_says("jay", "hello")
        entries = await h.wait_delivered("c2c", "jay", 1)
        await h.idle()
        assert [e["content"] for e in entries] == [AgentConfig().error_message]
    assert any("TimeoutError" in r.getMessage() for r in caplog.records if r.name.startswith("herald.agent"))
