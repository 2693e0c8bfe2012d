"""The OneBot emulator judged by a client it was not written with: aiocqhttp, unmodified, in its
reverse-WebSocket mode, pointed at the emulator by configuration only (its `access_token` and the
URL the emulator connects to). It receives an injected private and group message, answers both
with its own `send`, and the emulator's transcript shows the answers where they belong."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
from aiocqhttp import CQHttp, Event

from herald.sim.onebot import OneBotSimSettings, serve_onebot
from tests.sim_control import free_port

WAIT_S = 30.0


async def test_aiocqhttp_answers_what_the_emulator_injects() -> None:
    settings = OneBotSimSettings(self_id=10001, access_token="third-party-token")
    bot = CQHttp(access_token="third-party-token")
    seen: list[dict[str, Any]] = []

    @bot.on_message("private", "group")  # type: ignore[untyped-decorator]
    async def answer(event: Event) -> None:
        seen.append(dict(event))
        await bot.send(event, f"pong: {event.raw_message}")

    port = free_port()
    server = asyncio.create_task(bot.run_task(host="127.0.0.1", port=port))
    try:
        async with serve_onebot(settings) as sim, aiohttp.ClientSession() as http:
            sim.connect_to(f"ws://127.0.0.1:{port}/ws/")
            async with asyncio.timeout(WAIT_S):
                await sim.wait_connected()

            async def control(path: str, body: dict[str, Any]) -> Any:
                async with http.post(sim.base_url + path, json=body) as response:
                    assert response.status == 200, await response.text()
                    return await response.json()

            async def transcript(chat: str, chat_id: str) -> list[dict[str, Any]]:
                async with http.get(
                    f"{sim.base_url}/_sim/onebot/transcript?type={chat}&id={chat_id}"
                ) as response:
                    return list((await response.json())["entries"])

            await control("/_sim/onebot/private/20001/messages", {"message": "ping &[1]"})
            await control("/_sim/onebot/groups/30001/messages", {"user_id": 20002, "message": "hello"})
            async with asyncio.timeout(WAIT_S):
                while not (await transcript("private", "20001") and await transcript("group", "30001")):  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            private, group = await transcript("private", "20001"), await transcript("group", "30001")
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server

    assert [e["text"] for e in private] == ["pong: ping &[1]"]
    # aiocqhttp answered with the raw CQ string: the @ came back as a segment, not as text.
    assert [e["message"] for e in group] == [
        [
            {"type": "text", "data": {"text": "pong: "}},
            {"type": "at", "data": {"qq": "10001"}},
            {"type": "text", "data": {"text": "hello"}},
        ]
    ]
    assert all(e["status"] == "ok" and e["action"] == "send_private_msg" for e in private)
    assert {e["message_type"] for e in seen} == {"private", "group"}
    assert seen[0]["sender"]["user_id"] == 20001 and seen[1]["group_id"] == 30001
