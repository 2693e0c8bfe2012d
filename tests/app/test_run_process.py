"""`herald run` as an operator starts it: its own process (on uvloop, where installed), a config
file, the platform (the emulator) and an OpenAI-compatible model server over real sockets. A user's
message is answered through the model's tool call and final text, and SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from herald.sim.app import RunningSim
from tests.app.herald_harness import WAIT_S
from tests.llm import fake_providers
from tests.llm.fake_providers import fake_server
from tests.sim_control import free_port, qq_toml, running_sim

T = TypeVar("T")


async def until(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool]) -> T:
    """Poll `probe` until `done` (a safety limit, not a timing assertion)."""
    async with asyncio.timeout(WAIT_S):
        while not done(value := await probe()):  # noqa: ASYNC110 (another process)
            await asyncio.sleep(0.05)
    return value


class HeraldRun:
    """A `herald` command (`herald run`) in its own process, its output in a log file."""

    def __init__(self, log: Path, process: asyncio.subprocess.Process) -> None:
        self.log = log
        self.process = process

    @property
    def code(self) -> int | None:
        """Its exit code, once it has exited."""
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.asynccontextmanager
async def herald_process(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> AsyncIterator[HeraldRun]:
    """`herald <args>` in its own process, its output in `log`; SIGTERMed on the way out, its exit
    code kept."""
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from herald.cli import main; main()", *args,
            stdout=out, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL, env=env,
        )  # fmt: skip
    run = HeraldRun(log, process)
    try:
        yield run
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT_S):
            await process.wait()


@contextlib.asynccontextmanager
async def herald_run(tmp_path: Path, platform: str, model_base: str, db_url: str) -> AsyncIterator[HeraldRun]:
    """Start Herald on `platform` (its TOML sections) with the fake OpenAI-compatible model; SIGTERM
    it on the way out and keep its exit code."""
    config = tmp_path / "herald.toml"
    config.write_text(
        f"""
{platform}
[llm]
provider = "openai"
base_url = "{model_base}/v1"
api_key = "sk-test"
model = "fake"

[storage]
url = "{db_url}"
""",
        encoding="utf-8",
    )
    async with herald_process(["run", "--config", str(config)], tmp_path / "herald.log") as run:
        yield run


async def finished_texts(http: aiohttp.ClientSession, sim: RunningSim, scene: str, target: str) -> list[str]:
    """The bot's messages in one conversation that reached the user (a streamed reply once, done)."""
    url = f"{sim.base_url}/_sim/transcript?scene={scene}&target={target}"
    async with http.get(url) as response:
        entries: list[dict[str, Any]] = (await response.json())["entries"]
    texts = []
    for entry in entries:
        frame = entry.get("stream")
        if entry.get("direction") == "out" and entry.get("status") == 200:
            if frame is None:
                texts.append(entry["content"])
            elif frame.get("done"):
                texts.append(frame["text"])
    return texts


async def log_says(run: HeraldRun, line: str) -> None:
    async def output() -> str:
        return run.output()

    await until(output, lambda text: line in text or run.code is not None)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_herald_run_answers_through_a_model_server_and_stops_on_sigterm(
    db_url: str, tmp_path: Path
) -> None:
    fake_providers.requests.clear()
    async with running_sim() as sim, fake_server() as model_base, aiohttp.ClientSession() as http:
        async with herald_run(tmp_path, qq_toml(sim), model_base, db_url) as run:
            await log_says(run, "qq gateway: READY")
            async with http.post(f"{sim.base_url}/_sim/c2c/user-run/messages", json={"content": "go"}):
                pass

            async def shown() -> list[str]:
                return await finished_texts(http, sim, "c2c", "user-run")

            texts = await until(shown, lambda got: len(got) >= 2)
            assert texts == ["via openai", "done via openai"]  # the tool call, then the final answer
            assert fake_providers.requests["openai"][0]["stream"] is True  # C2C replies stream
    assert run.code == 0, run.output()
    assert "Herald stopped" in run.output()
    assert "Traceback" not in run.output()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_herald_run_with_only_a_onebot_account(db_url: str, tmp_path: Path) -> None:
    """`[onebot]` alone is a whole config: `herald run` starts, the emulated implementation
    connects, and a friend's message is answered through the model."""
    from herald.sim.onebot import OneBotSimSettings, serve_onebot

    fake_providers.requests.clear()
    port = free_port()
    onebot = f'[onebot]\nport = {port}\naccess_token = "run-token"\n'
    async with (
        serve_onebot(OneBotSimSettings(access_token="run-token")) as sim,
        fake_server() as model_base,
        aiohttp.ClientSession() as http,
    ):
        async with herald_run(tmp_path, onebot, model_base, db_url) as run:
            sim.connect_to(f"ws://127.0.0.1:{port}/onebot/v11/ws")
            await log_says(run, "OneBot implementation connected")
            async with http.post(
                f"{sim.base_url}/_sim/onebot/private/20001/messages", json={"message": "go"}
            ):
                pass

            async def shown() -> list[str]:
                async with http.get(
                    f"{sim.base_url}/_sim/onebot/transcript?type=private&id=20001"
                ) as response:
                    entries: list[dict[str, Any]] = (await response.json())["entries"]
                return [entry["text"] for entry in entries if entry["status"] == "ok"]

            texts = await until(shown, lambda got: len(got) >= 2)
            assert texts == ["via openai", "done via openai"]
    assert run.code == 0, run.output()
    assert "Traceback" not in run.output()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_taken_port_stops_herald_run_with_the_setting_to_change(db_url: str, tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        async with fake_server() as model_base:
            async with herald_run(tmp_path, f"[onebot]\nport = {port}\n", model_base, db_url) as run:
                async with asyncio.timeout(WAIT_S):
                    await run.process.wait()
    assert run.code == 2, run.output()
    assert f"✗ [onebot] port: cannot listen on 127.0.0.1:{port}" in run.output()
    assert "Traceback" not in run.output()
