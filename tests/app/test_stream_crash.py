"""Acceptance: Herald (its own process, with an OpenAI-compatible model streaming over real HTTP)
is SIGKILLed while a C2C reply is being streamed; a new process on the same database ends that
stream with what the user already had and an honest ending: one final frame, no text ever
changed, no second reply, no request the platform refused, and the model not asked again."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import text

from herald.sim.app import RunningSim, serve
from herald.sim.settings import SimSettings
from herald.store import Database
from tests.app.herald_harness import WAIT_S
from tests.app.test_crash import launch
from tests.app.test_stream import check_rules
from tests.sim_control import qq_toml

USER = "stream-crash-user"
SHOWN = ["第一段", "，第二段"]  # what the model writes before it stalls
RESTARTED = "（回复中断：服务重启）"


class StallingModel:
    """An OpenAI-compatible chat endpoint that streams `SHOWN` as server-sent events and then
    stalls (the writing is cut by the kill, as a slow model's would be). Counts its requests."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.release = asyncio.Event()  # lets stalled responses end when the test is over

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        if not body.get("stream"):
            return web.json_response({"error": {"message": "this model only streams"}}, status=400)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for token in SHOWN:
            await response.write(_event({"role": "assistant", "content": token}))
            await asyncio.sleep(0.3)  # a slow model: the tokens arrive in different frames
        await self.release.wait()
        return response


def _event(delta: dict[str, Any]) -> bytes:
    chunk = {
        "id": "chatcmpl-stall",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "stalling",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()


@asynccontextmanager
async def model_server(model: StallingModel) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", model.completions)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        model.release.set()
        await runner.cleanup()


def write_config(path: Path, sim: RunningSim, db_url: str, model_url: str) -> None:
    path.write_text(
        f"""
{qq_toml(sim)}
[storage]
url = "{db_url}"

[llm]
provider = "openai"
base_url = "{model_url}"
api_key = "test-key"
model = "stalling"
tools = false

[delivery]
stream_interval_s = 0.1   # each of the model's tokens gets a frame of its own
""",
        encoding="utf-8",
    )


async def frames(http: aiohttp.ClientSession, sim: RunningSim) -> list[dict[str, Any]]:
    """Every request the emulator recorded for the user's conversation (refused ones too)."""
    async with http.get(f"{sim.base_url}/_sim/transcript?scene=c2c&target={USER}") as response:
        entries = (await response.json())["entries"]
    return [e for e in entries if e["direction"] == "out"]


async def refused(http: aiohttp.ClientSession, sim: RunningSim) -> list[dict[str, Any]]:
    async with http.get(f"{sim.base_url}/_sim/requests") as response:
        requests = (await response.json())["requests"]
    return [r for r in requests if r["status"] >= 400 or r["code"]]


async def scalar(db_url: str, sql: str) -> Any:
    db = Database(db_url)
    try:
        async with db.session() as session:
            return await session.scalar(text(sql))
    finally:
        await db.dispose()


async def next_index(db_url: str) -> int | None:
    """The next frame's index in the open stream's handle as Herald stored it (None: none yet)."""
    handle = await scalar(db_url, "select stream from outbox_items where state = 'streaming'")
    return None if handle is None else int(json.loads(handle)["index"])


async def test_sigkill_mid_stream_then_restart_ends_the_stream_once(db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "herald.toml"
    model = StallingModel()
    async with (
        serve(SimSettings(port=0)) as sim,
        model_server(model) as model_url,
        aiohttp.ClientSession() as http,
    ):
        write_config(config, sim, db_url, model_url)
        process = await launch(config, None)
        try:
            async with http.post(
                f"{sim.base_url}/_sim/c2c/{USER}/messages", json={"content": "tell me a long story"}
            ) as response:
                assert response.status == 200
            shown = "".join(SHOWN)
            async with asyncio.timeout(WAIT_S):
                # The user has seen the model's text so far, and Herald has recorded the frame
                # that showed it: the kill comes while the model is still writing.
                while not any(f.get("stream", {}).get("text") == shown for f in await frames(http, sim)):  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
                accepted = len([f for f in await frames(http, sim) if f["code"] == 0])
                while await next_index(db_url) != accepted:  # noqa: ASYNC110 (another process's database)
                    await asyncio.sleep(0.02)
        finally:
            process.send_signal(signal.SIGKILL)
            await process.wait()
        at_kill = await frames(http, sim)
        assert not any(f["stream"].get("done") for f in at_kill), "the stream ended before the kill"

        process = await launch(config, None)
        try:
            async with asyncio.timeout(WAIT_S):
                while (  # noqa: ASYNC110
                    await scalar(db_url, "select count(*) from agent_turns where status != 'done'")
                    or await scalar(db_url, "select count(*) from outbox_items where state != 'delivered'")
                ):
                    await asyncio.sleep(0.05)
        finally:
            process.send_signal(signal.SIGTERM)
            await process.wait()

        sent = await frames(http, sim)
        check_rules(sent)  # one stream: consecutive frames, text only growing, one final frame
        assert sent[: len(at_kill)] == at_kill
        assert sent[-1]["stream"]["text"] == f"{shown}\n\n{RESTARTED}"
        # No second full reply: every message the user got is a frame of that one stream.
        assert len(sent) == len(at_kill) + 1
        assert await refused(http, sim) == []
        # The restarted turn found its reply shown; the model was asked once in all.
        assert len(model.requests) == 1
