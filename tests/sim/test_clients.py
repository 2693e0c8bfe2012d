"""Fidelity: unmodified third-party QQ clients run their bots against the emulator.

Each bot (in `clients/`) is started as its own process and told where the platform is by the
client's own configuration only (base URLs in environment settings); the client finds the gateway,
identifies with its default intents, parses the events and replies passively. A test asserts what
the user sees: the reply in the emulator's transcript, anchored on the message it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from herald.sim.app import RunningSim
from tests.sim_control import SimControl, running_sim

CLIENTS = Path(__file__).parent / "clients"
WAIT_S = 30.0  # a ceiling for something that must happen (a process starting), never a timing assertion
APP_ID, SECRET, BOT_ID = "102030406", "third-party-fidelity-secret-0123", "3344556677"


@contextlib.asynccontextmanager
async def bot_process(script: str, env: dict[str, str], log: Path) -> AsyncIterator[None]:
    """The client's bot in its own process; stopped with SIGTERM (its own shutdown path)."""
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CLIENTS / script),
            env={**os.environ, **env},
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def until(condition: Callable[[], Any], log: Path, what: str) -> Any:
    try:
        async with asyncio.timeout(WAIT_S):
            while not (found := await condition()):  # noqa: ASYNC110 (another process replies)
                await asyncio.sleep(0.05)
            return found
    except TimeoutError:
        said = await asyncio.to_thread(log.read_text, errors="replace")
        raise AssertionError(f"{what}; the client said:\n{said[-4000:]}") from None


class Client:
    def __init__(self, sim: RunningSim, control: SimControl, log: Path) -> None:
        self.sim = sim
        self.control = control
        self.log = log

    async def online(self) -> dict[str, Any]:
        async def session() -> dict[str, Any] | None:
            gateway = await self.control.call("GET", "/_sim/gateway")
            live = [s for s in gateway["sessions"] if s["online"]]
            return live[0] if live else None

        found: dict[str, Any] = await until(session, self.log, "the client never identified")
        return found

    async def reply_to(self, scene: str, target: str, count: int = 1) -> list[dict[str, Any]]:
        async def replies() -> list[dict[str, Any]] | None:
            entries = (await self.control.call("GET", f"/_sim/transcript?scene={scene}&target={target}"))[
                "entries"
            ]
            out = [e for e in entries if e["direction"] == "out"]
            return out if len(out) >= count else None

        found: list[dict[str, Any]] = await until(replies, self.log, f"no reply in {scene}:{target}")
        return found


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[RunningSim, SimControl, Path]]:
    async with (
        running_sim(app_id=APP_ID, secret=SECRET, bot_id=BOT_ID) as sim,
        aiohttp.ClientSession() as http,
    ):
        yield sim, SimControl(sim, http), tmp_path / "client.log"


async def _chat(c: Client, prefix: str) -> None:
    """A C2C message and a group @ message, each answered passively on its own msg_id."""
    c2c = await c.control.c2c("user-tp", "hello there")
    [reply] = await c.reply_to("c2c", "user-tp")
    assert reply["status"] == 200, reply
    assert (reply["kind"], reply["msg_id"]) == ("passive", c2c["msg_id"])
    assert reply["content"] == f"{prefix}: hello there"

    group = await c.control.group("group-tp", "member-tp", "hi group")
    [reply] = await c.reply_to("group", "group-tp")
    assert reply["status"] == 200, reply
    assert (reply["kind"], reply["msg_id"]) == ("passive", group["msg_id"])
    assert reply["content"] == f"{prefix}: hi group"


async def test_nonebot_qq_adapter_chats_and_welcomes_with_its_default_intents(
    client: tuple[RunningSim, SimControl, Path],
) -> None:
    sim, control, log = client
    env = {
        "DRIVER": "~none+~httpx+~websockets",
        "QQ_API_BASE": sim.base_url + "/",
        "QQ_AUTH_BASE": sim.token_url,
        # No `intent`: the adapter's default (GUILDS, GUILD_MEMBERS, GUILD_MESSAGE_REACTIONS,
        # MESSAGE_AUDIT, PUBLIC_GUILD_MESSAGES), the set an ordinary bot was refused with 4014.
        "QQ_BOTS": json.dumps([{"id": APP_ID, "token": "unused", "secret": SECRET}]),
        "LOG_LEVEL": "DEBUG",
    }
    async with bot_process("nonebot_bot.py", env, log):
        c = Client(sim, control, log)
        session = await c.online()
        nonebot_default = (1 << 0) | (1 << 1) | (1 << 10) | (1 << 27) | (1 << 30)
        assert session["intents"] == nonebot_default
        # Its default intents do not include GROUP_AND_C2C_EVENT: it hears no C2C or group
        # message until configured for them, as on the platform.
        assert not session["intents"] & (1 << 25)

    env["QQ_BOTS"] = json.dumps(
        [
            {
                "id": APP_ID,
                "token": "unused",
                "secret": SECRET,
                "intent": {"c2c_group_at_messages": True},
            }
        ]
    )
    async with bot_process("nonebot_bot.py", env, log):
        c = Client(sim, control, log)
        await c.online()
        await _chat(c, "nonebot")
        added = await control.call(
            "POST", "/_sim/events", {"t": "FRIEND_ADD", "fields": {"openid": "new-friend"}}
        )
        [reply] = await c.reply_to("c2c", "new-friend")
        assert reply["status"] == 200, reply
        assert (reply["kind"], reply["event_id"]) == ("event", added["event_id"])
        assert reply["content"] == "nonebot: welcome"


async def test_qqbot_agent_sdk_chats_with_its_default_intents(
    client: tuple[RunningSim, SimControl, Path],
) -> None:
    sim, control, log = client
    env = {
        "QQ_API_BASE": sim.base_url,
        "QQ_TOKEN_URL": sim.token_url,
        "APP_ID": APP_ID,
        "APP_SECRET": SECRET,
    }
    async with bot_process("agent_sdk_bot.py", env, log):
        c = Client(sim, control, log)
        session = await c.online()
        # GROUP_AND_C2C_EVENT, PUBLIC_GUILD_MESSAGES, DIRECT_MESSAGE, INTERACTION
        assert session["intents"] == (1 << 25) | (1 << 30) | (1 << 12) | (1 << 26)
        await _chat(c, "agent-sdk")
