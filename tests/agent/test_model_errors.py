"""When the model fails or times out, the user gets one short message and the operator a log
line with the cause; secrets never appear in the log."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo

from herald.config import AgentConfig
from tests.app.herald_harness import Script, harness


class Broken(Script):
    async def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise ModelHTTPError(status_code=503, model_name="scripted", body={"error": "upstream overloaded"})


class Buggy(Script):
    """A model client with a bug: an error no model or network explains."""

    async def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        headers: Any = None  # a response's headers, never read
        return cast(ModelResponse, headers.getall("x"))


class Hangs(Script):
    async def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def one_failed_turn(db_url: str, script: Script, user: str) -> str:
    """A user says hello to a failing model and gets the error message; the emulator's secret."""
    async with harness(db_url, script) as h:
        await h.user_says(user, "hello")
        entries = await h.wait_delivered("c2c", user, 1)
        await h.idle()
        assert [e["content"] for e in entries] == [AgentConfig().error_message]
        return h.sim.state.settings.secret


async def test_a_model_error_gives_the_user_one_short_message_and_the_operator_the_cause(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="herald.agent")
    secret = await one_failed_turn(db_url, Broken(), "ivy")
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("herald.agent")]
    assert len(lines) == 1
    assert "ModelHTTPError" in lines[0] and "503" in lines[0]
    assert secret not in caplog.text
    # The cause says all: no traceback.
    assert [r.exc_info for r in caplog.records if r.name.startswith("herald.agent")] == [None]


async def test_a_bug_in_the_model_client_is_logged_with_its_traceback(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="herald.agent")
    await one_failed_turn(db_url, Buggy(), "kim")
    records = [r for r in caplog.records if r.name.startswith("herald.agent")]
    assert len(records) == 1
    assert "AttributeError" in records[0].getMessage()
    assert records[0].exc_info is not None and "headers.getall" in caplog.text


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


class Flaky(Script):
    """Fails while `broken` is set, then answers."""

    broken = True

    async def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if self.broken:
            raise ModelHTTPError(
                status_code=503, model_name="scripted", body={"error": "upstream overloaded"}
            )
        return await super().respond(messages, info)


async def test_status_reports_a_failing_model_until_it_answers_again(db_url: str) -> None:
    """The apology is not the whole story: /status names the cause and the count, and clears."""
    script = Flaky()
    async with harness(db_url, script) as h:
        await h.user_says("kim", "/status")
        (status,) = await h.wait_delivered("c2c", "kim", 1)
        assert "model: scripted · ok" in status["content"]

        await h.user_says("kim", "hello")
        await h.user_says("kim", "hello again")
        await h.wait_delivered("c2c", "kim", 3)
        await h.user_says("kim", "/status")
        status = (await h.wait_delivered("c2c", "kim", 4))[-1]
        assert "model: scripted · failing: ModelHTTPError" in status["content"]
        assert "503" in status["content"] and "2 requests in a row" in status["content"]
        assert h.herald is not None and not h.herald.model_health.ok

        script.broken = False
        await h.user_says("kim", "hello once more")
        await h.wait_delivered("c2c", "kim", 5)
        await h.user_says("kim", "/status")
        status = (await h.wait_delivered("c2c", "kim", 6))[-1]
        assert "model: scripted · ok" in status["content"]


def test_the_model_owners_problem_is_part_of_the_state() -> None:
    """The embedded server's supervisor sets ModelHandle.problem; app.py passes it as `problem`."""
    from datetime import UTC, datetime

    from herald.agent import ModelHealth
    from herald.core.clock import VirtualClock

    problem: list[str | None] = ["the embedded model server exited (code -11); restarting"]
    health = ModelHealth(VirtualClock(datetime(2026, 12, 2, tzinfo=UTC)), problem=lambda: problem[0])
    assert not health.ok
    assert health.describe() == "failing: the embedded model server exited (code -11); restarting"
    line = health.failed("APIConnectionError: Connection error.")
    assert line.startswith("failing: APIConnectionError: Connection error. (1 request")
    assert line.endswith("; the embedded model server exited (code -11); restarting")
    problem[0] = None
    health.succeeded()
    assert health.ok and health.describe() == "ok"
