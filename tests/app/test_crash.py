"""Acceptance: SIGKILL Herald while five conversations are each in a turn that sends ten
messages; after a restart every conversation has all ten exactly once, in order, and the final
answer, and the model was not asked again for a step it had already answered."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text

from herald.sim.app import RunningSim, serve
from herald.sim.settings import SimSettings
from herald.store import Database
from tests.app.herald_harness import WAIT_S
from tests.sim_control import qq_toml

ROOT = Path(__file__).resolve().parents[2]  # where `tests` is importable from
USERS = [f"crash-user-{i}" for i in range(5)]


def write_config(path: Path, sim: RunningSim, db_url: str) -> None:
    path.write_text(
        f"""
{qq_toml(sim)}
[qq.delivery]
c2c_reply_limit = 20   # every send stays passive: a resend after the crash is deduplicated
message_qps = 10       # slow enough that the kill lands in the middle of the turns

[storage]
url = "{db_url}"

[limits]
user_messages_per_minute = 0        # bursts on purpose: every message must be answered as sent
max_waiting_per_conversation = 1000
""",
        encoding="utf-8",
    )


async def launch(config: Path, record: Path | None) -> asyncio.subprocess.Process:
    """Herald in its own process: the scripted model recording to `record`, or (None) the
    config's own [llm] model."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.app.scripted_herald", str(config), *([str(record)] if record else []),
        stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    async with asyncio.timeout(WAIT_S):
        line = await process.stdout.readline()
    assert line.strip() == b"READY", line
    return process


async def delivered(http: aiohttp.ClientSession, sim: RunningSim, user: str) -> list[dict[str, Any]]:
    async with http.get(f"{sim.base_url}/_sim/transcript?scene=c2c&target={user}") as response:
        entries = (await response.json())["entries"]
    return [e for e in entries if e.get("status") == 200]


async def total(http: aiohttp.ClientSession, sim: RunningSim) -> int:
    return sum([len(await delivered(http, sim, user)) for user in USERS])


async def until(probe: Callable[[], Awaitable[int]], at_least: int, interval: float) -> None:
    async with asyncio.timeout(WAIT_S):
        while (await probe()) < at_least:  # noqa: ASYNC110 (polling another process over HTTP)
            await asyncio.sleep(interval)


async def test_sigkill_mid_turns_then_restart_delivers_everything_once(db_url: str, tmp_path: Path) -> None:
    config, record = tmp_path / "herald.toml", tmp_path / "calls.log"
    async with serve(SimSettings(port=0, c2c_reply_limit=20)) as sim, aiohttp.ClientSession() as http:
        write_config(config, sim, db_url)
        process = await launch(config, record)
        for i, user in enumerate(USERS):
            async with http.post(
                f"{sim.base_url}/_sim/c2c/{user}/messages", json={"content": f"send 10 messages conv{i}"}
            ) as response:
                assert response.status == 200
        await until(lambda: total(http, sim), 12, interval=0.01)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        at_kill = await total(http, sim)
        assert at_kill < 55, "the turns finished before the kill; the test did not test a crash"

        process = await launch(config, record)
        try:
            await until(lambda: total(http, sim), 55, interval=0.05)
        finally:
            process.send_signal(signal.SIGTERM)
            await process.wait()

        for i, user in enumerate(USERS):
            contents = [e["content"] for e in await delivered(http, sim, user)]
            assert contents == [f"conv{i} #{n}" for n in range(1, 11)] + ["done: 10 sent"], contents

    calls = Counter(record.read_text(encoding="utf-8").splitlines())
    for i in range(5):
        assert calls[f"send 10 messages conv{i}\tfirst"] == 1, calls
        assert calls[f"send 10 messages conv{i}\tafter"] == 1, calls

    db = Database(db_url)
    try:
        async with db.session() as session:
            unfinished = await session.scalar(text("select count(*) from agent_turns where status != 'done'"))
            undelivered = await session.scalar(
                text("select count(*) from outbox_items where state != 'delivered'")
            )
    finally:
        await db.dispose()
    assert (unfinished, undelivered) == (0, 0)
