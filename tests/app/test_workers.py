"""`herald run --workers 2`: two worker processes on one PostgreSQL database, each its own gateway
shard or both on the webhook port, answering users; a SIGKILLed worker is started again, and SIGINT
stops them all."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from herald.sim.app import RunningSim, serve
from herald.sim.settings import SimSettings
from tests.app.herald_harness import WAIT_S
from tests.sim_control import free_port, qq_toml

ROOT = Path(__file__).resolve().parents[2]


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text()
        found |= {int(child) for child in text.split()}
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def sessions(http: aiohttp.ClientSession, sim: RunningSim) -> list[list[int]]:
    async with http.get(f"{sim.base_url}/_sim/gateway") as response:
        found: list[dict[str, Any]] = (await response.json())["sessions"]
    return sorted(s["shard"] for s in found if s["online"])


async def until(probe: Any, want: Any) -> None:
    async with asyncio.timeout(WAIT_S):
        while await probe() != want:  # noqa: ASYNC110 (other processes, over HTTP)
            await asyncio.sleep(0.1)


async def test_workers_share_the_shards_restart_and_stop(db_url: str, tmp_path: Path) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("workers share one database, which must be PostgreSQL")
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    llm_port = free_port()
    llm = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bench" / "scripted_llm.py"), "--port", str(llm_port), env=env
    )
    supervisor: asyncio.subprocess.Process | None = None
    try:
        async with serve(SimSettings(port=0, gateway_shards=2)) as sim, aiohttp.ClientSession() as http:
            config = tmp_path / "herald.toml"
            config.write_text(
                f"""
{qq_toml(sim)}
[storage]
url = "{db_url}"

[llm]
provider = "openai"
base_url = "http://127.0.0.1:{llm_port}/v1"
api_key = "scripted"
model = "scripted"

[policy]
stream = false  # the scripted model answers non-streaming requests
""",
                encoding="utf-8",
            )
            supervisor = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "herald", "run", "--workers", "2", "-c", str(config),
                "--log-level", "warning", env=env,
            )  # fmt: skip
            await until(lambda: sessions(http, sim), [[0, 2], [1, 2]])
            first = children(supervisor.pid)
            assert len(first) == 2

            async with http.post(f"{sim.base_url}/_sim/c2c/w-user/messages", json={"content": "hi"}) as r:
                assert r.status == 200

            async def replies() -> list[str]:
                async with http.get(f"{sim.base_url}/_sim/transcript?scene=c2c&target=w-user") as response:
                    entries = (await response.json())["entries"]
                return [
                    e["content"] for e in entries if e.get("direction") == "out" and e.get("status") == 200
                ]

            await until(replies, ["echo: hi"])

            victim = max(first)
            os.kill(victim, signal.SIGKILL)
            async with asyncio.timeout(WAIT_S):
                while len(children(supervisor.pid) - {victim}) < 2:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            await until(lambda: sessions(http, sim), [[0, 2], [1, 2]])
            workers = children(supervisor.pid)
            assert victim not in workers and first - {victim} <= workers

            supervisor.send_signal(signal.SIGINT)
            async with asyncio.timeout(WAIT_S):
                code = await supervisor.wait()
            assert code == 0
            assert not any(alive(pid) for pid in workers)
    finally:
        if supervisor is not None and supervisor.returncode is None:
            supervisor.kill()
            await supervisor.wait()
        llm.terminate()
        await llm.wait()


async def test_webhook_workers_share_the_port(db_url: str, tmp_path: Path) -> None:
    """Both workers listen on one webhook port (SO_REUSEPORT); the platform's pushes are answered
    once each while one worker is SIGKILLed and started again."""
    if not db_url.startswith("postgresql"):
        pytest.skip("workers share one database, which must be PostgreSQL")
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    llm_port, hook_port = free_port(), free_port()
    llm = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bench" / "scripted_llm.py"), "--port", str(llm_port), env=env
    )
    supervisor: asyncio.subprocess.Process | None = None
    hook = f"http://127.0.0.1:{hook_port}/qq/webhook"
    try:
        async with serve(SimSettings(port=0)) as sim, aiohttp.ClientSession() as http:
            config = tmp_path / "herald.toml"
            config.write_text(
                f"""
{qq_toml(sim)}transport = "webhook"
webhook_port = {hook_port}

[storage]
url = "{db_url}"

[llm]
provider = "openai"
base_url = "http://127.0.0.1:{llm_port}/v1"
api_key = "scripted"
model = "scripted"

[policy]
stream = false

[limits]
user_messages_per_minute = 0
""",
                encoding="utf-8",
            )
            supervisor = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "herald", "run", "--workers", "2", "-c", str(config),
                "--log-level", "warning", env=env,
            )  # fmt: skip
            async with asyncio.timeout(WAIT_S):
                while len(children(supervisor.pid)) < 2:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            async with http.put(f"{sim.base_url}/_sim/settings", json={"webhook_url": hook}) as r:
                assert r.status == 200

            async def online() -> bool:
                async with http.get(f"{sim.base_url}/_sim/webhook") as response:
                    return bool((await response.json())["online"])

            await until(online, True)

            async def replies() -> list[str]:
                async with http.get(f"{sim.base_url}/_sim/transcript?scene=c2c&target=h-user") as response:
                    entries = (await response.json())["entries"]
                return [
                    e["content"] for e in entries if e.get("direction") == "out" and e.get("status") == 200
                ]

            async def say(n: int) -> None:
                async with http.post(
                    f"{sim.base_url}/_sim/c2c/h-user/messages", json={"content": f"n{n}"}
                ) as r:
                    assert r.status == 200

            for n in range(3):
                await say(n)
            await until(replies, [f"echo: n{n}" for n in range(3)])
            os.kill(max(children(supervisor.pid)), signal.SIGKILL)
            for n in range(3, 6):
                await say(n)

            # A push that failed against the killed worker is redelivered after the pushes that
            # followed it: its message is answered once, though maybe after them.
            async def answered() -> list[str]:
                return sorted(await replies())

            await until(answered, [f"echo: n{n}" for n in range(6)])
            async with asyncio.timeout(WAIT_S):
                while len(children(supervisor.pid)) < 2:  # noqa: ASYNC110 (the restarted worker)
                    await asyncio.sleep(0.1)

            supervisor.send_signal(signal.SIGINT)
            async with asyncio.timeout(WAIT_S):
                assert await supervisor.wait() == 0
    finally:
        if supervisor is not None and supervisor.returncode is None:
            supervisor.kill()
            await supervisor.wait()
        llm.terminate()
        await llm.wait()
