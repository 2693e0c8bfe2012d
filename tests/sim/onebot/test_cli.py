"""`herald sim-onebot` in its own process: it connects to a bot's reverse WebSocket, or serves its
HTTP API and POSTs events to the bot, and its control API injects messages the bot receives."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiohttp
import pytest
from pydantic import SecretStr

from herald.config import OneBotConfig
from herald.core.events import InboundEvent, InboundMessage
from herald.onebot import OneBotPlatform
from herald.serving import serve
from herald.store import Database
from tests.sim_control import free_port

WAIT_S = 30.0


@pytest.mark.parametrize("transport", ["reverse-ws", "http"])
async def test_the_command_connects_and_injects(transport: str) -> None:
    events: list[InboundEvent] = []

    async def sink(event: InboundEvent) -> None:
        events.append(event)

    port = free_port()
    token = SecretStr("cli-token")
    if transport == "http":
        config = OneBotConfig(
            transport="http",
            url=f"http://127.0.0.1:{port}",
            port=0,
            access_token=token,
            secret=SecretStr("s"),
        )
    else:
        config = OneBotConfig(port=0, access_token=token)
    platform = OneBotPlatform(config, Database("sqlite+aiosqlite://"))
    await platform.start(sink)
    try:
        async with serve(platform.endpoints()):
            link = ["--connect", platform.connection.url]
            if transport == "http":
                link = ["--connect", "", "--post-url", platform.connection.url, "--secret", "s"]
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", "from herald.cli import main; main()", "sim-onebot",
                *link, "--port", str(port), "--access-token", "cli-token",
                stdout=asyncio.subprocess.DEVNULL, env=os.environ.copy(),
            )  # fmt: skip
            try:
                async with asyncio.timeout(WAIT_S):
                    await platform.wait_ready()
                async with aiohttp.ClientSession() as http:
                    async with http.post(
                        f"http://127.0.0.1:{port}/_sim/onebot/private/20001/messages", json={"message": "hi"}
                    ) as response:
                        assert response.status == 200
                async with asyncio.timeout(WAIT_S):
                    while not events:  # noqa: ASYNC110 (another process pushes it)
                        await asyncio.sleep(0.01)
            finally:
                process.send_signal(signal.SIGINT)
                await process.wait()
    finally:
        await platform.stop()
    (event,) = events
    assert isinstance(event, InboundMessage) and (event.content, event.target.key) == (
        "hi",
        "onebot:c2c:20001",
    )
