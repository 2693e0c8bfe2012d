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


async def test_aiocqhttp_over_http_and_http_post() -> None:
    """aiocqhttp's HTTP mode: it calls the emulator's HTTP API (`api_root`) and the emulator POSTs
    events to aiocqhttp's own server, signed with the shared secret aiocqhttp checks. A handler
    that returns a dict answers with a quick operation instead of an API call."""
    settings = OneBotSimSettings(self_id=10001, access_token="http-token")
    seen: list[dict[str, Any]] = []
    async with serve_onebot(settings) as sim, aiohttp.ClientSession() as http:
        bot = CQHttp(api_root=sim.base_url, access_token="http-token", secret="post-secret")

        @bot.on_message("private")  # type: ignore[untyped-decorator]
        async def by_api(event: Event) -> None:
            seen.append(dict(event))
            await bot.send(event, f"api: {event.raw_message}")

        @bot.on_message("group")  # type: ignore[untyped-decorator]
        async def by_quick_operation(event: Event) -> dict[str, Any]:
            seen.append(dict(event))
            return {"reply": "quick", "at_sender": False}

        @bot.on_request("friend")  # type: ignore[untyped-decorator]
        async def friend(event: Event) -> dict[str, Any]:
            return {"approve": True, "remark": "from aiocqhttp"}

        port = free_port()
        server = asyncio.create_task(bot.run_task(host="127.0.0.1", port=port))
        try:

            async def control(path: str, body: dict[str, Any]) -> Any:
                async with http.post(sim.base_url + path, json=body) as response:
                    answer = await response.json()
                    assert response.status == 200 and "post_error" not in answer, answer
                    return answer

            await control("/_sim/onebot/post", {"url": f"http://127.0.0.1:{port}/", "secret": "post-secret"})
            async with asyncio.timeout(WAIT_S):  # until aiocqhttp's server listens
                while True:
                    try:
                        async with http.get(f"http://127.0.0.1:{port}/"):
                            break
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.05)
            await control("/_sim/onebot/private/20001/messages", {"message": "ping"})
            await control("/_sim/onebot/groups/30001/messages", {"user_id": 20002, "message": "hello"})
            await control(
                "/_sim/onebot/requests", {"request_type": "friend", "user_id": 20042, "comment": "hi"}
            )
            private = sim.account.sent_to("private", "20001")
            group = sim.account.sent_to("group", "30001")
            requests = list(sim.account.requests.values())
        finally:
            server.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await server

    # The POST returns once aiocqhttp handled the event, its API call or quick operation included.
    assert [(e["text"], e["action"]) for e in private] == [("api: ping", "send_private_msg")]
    assert [(e["text"], e["action"]) for e in group] == [("quick", ".handle_quick_operation")]
    assert [(r.approve, r.remark, r.answered_by) for r in requests] == [
        (True, "from aiocqhttp", "quick operation")
    ]
    assert [e["message_type"] for e in seen] == ["private", "group"]
    http_calls = [a for a in sim.account.actions if a["via"] == "http"]
    assert [a["action"] for a in http_calls] == ["send_msg"]  # aiocqhttp's `send`
