"""MCP servers from config: real servers written with the `mcp` package (stdio, started by Herald,
and streamable HTTP, started by the test), their tools called by a scripted model through
Herald's durable turn; servers that fail to start, crash mid-call or hang leave Herald answering,
with the cause in the answer and one ERROR line in the log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from herald.config import HeraldConfig, McpServerConfig
from herald.extensions import McpServer
from herald.sim.app import serve
from herald.sim.settings import SimSettings
from tests.app.herald_harness import WAIT_S, Harness, harness, wait_for
from tests.extensions.scripts import CallsTools
from tests.sim_control import free_port, qq_toml

SERVER = str(Path(__file__).with_name("mcp_server.py"))
ROOT = Path(__file__).resolve().parents[2]  # where `tests` is importable from


def stdio(notes: Path, timeout_s: float = 30.0, **env: str) -> McpServerConfig:
    return McpServerConfig(
        command=sys.executable,
        args=[SERVER, "stdio"],
        env={"NOTES_FILE": str(notes), **env},
        timeout_s=timeout_s,
    )


@contextlib.asynccontextmanager
async def http_server(notes: Path) -> AsyncIterator[str]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, SERVER, "http", str(port), env={"NOTES_FILE": str(notes), "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with asyncio.timeout(WAIT_S):
            while True:
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    break
                await asyncio.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.kill()
        await process.wait()


def server_of(h: Harness, name: str) -> McpServer:
    assert h.herald is not None
    return next(s for s in h.herald.mcp_servers if s.name == name)


async def connected(h: Harness, name: str) -> McpServer:
    server = server_of(h, name)
    assert await server.wait_connected(WAIT_S), server.error
    return server


async def answer(h: Harness, user: str, text: str, count: int = 1) -> str:
    await h.user_says(user, text)
    entries = await h.wait_delivered("c2c", user, count)
    return str(entries[count - 1]["content"])


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():  # noqa: ASYNC110 (a server process or another Herald changes it)
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_agent_calls_tools_of_a_stdio_and_an_http_server(db_url: str, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    async with http_server(notes) as url:

        def configure(config: HeraldConfig) -> None:
            config.mcp.servers = {"lucky": stdio(notes), "web": McpServerConfig(url=url)}

        async with harness(db_url, CallsTools(), configure=configure) as h:
            await connected(h, "lucky")
            await connected(h, "web")
            assert h.herald is not None and h.herald.dispatcher is not None
            offered = {d.name for d in h.herald.dispatcher.runner.toolbox.definitions}
            # Prefixed by the server; `get.weather` made a name model APIs accept.
            assert {
                "lucky_lucky_number",
                "lucky_get_weather",
                "web_lucky_number",
                "web_append_note",
            } <= offered
            reply = await answer(
                h,
                "u1",
                'call lucky_lucky_number {"seed": 2} ; call web_append_note {"text": "hi"} ; '
                'call lucky_get_weather {"city": "杭州"}',
            )
    assert reply.startswith("got: lucky 17 from pid") and reply.endswith("| noted: hi | sunny in 杭州")
    assert notes.read_text() == "hi\n"


async def test_a_result_with_bytes_no_database_stores_is_kept_readable(db_url: str, tmp_path: Path) -> None:
    def configure(config: HeraldConfig) -> None:
        config.mcp.servers = {"lucky": stdio(tmp_path / "notes.txt")}

    async with harness(db_url, CallsTools(), configure=configure) as h:
        await connected(h, "lucky")
        reply = await answer(h, "u0", "call lucky_raw {}")
        assert h.herald is not None and h.herald.turns is not None
        assert await h.herald.turns.pending() == []
    assert reply == "got: before\ufffdafter"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_call_while_the_server_is_still_starting_waits_for_it(db_url: str, tmp_path: Path) -> None:
    """Herald does not wait for its servers at start; a call that comes first (a resumed turn, a
    quick user) waits for the server instead of failing."""

    def configure(config: HeraldConfig) -> None:
        config.mcp.servers = {"lucky": stdio(tmp_path / "notes.txt", STARTUP_DELAY_S="2")}

    async with harness(db_url, CallsTools(), configure=configure) as h:
        assert not server_of(h, "lucky").connected.is_set()
        reply = await answer(h, "u6", 'call lucky_lucky_number {"seed": 0}')
    assert reply.startswith("got: lucky 3 from pid")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_server_that_cannot_start_leaves_herald_answering_and_says_why_once(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def configure(config: HeraldConfig) -> None:
        config.mcp.servers = {"broken": McpServerConfig(command="/nonexistent/mcp-server", timeout_s=5)}

    caplog.set_level(logging.INFO, logger="herald.extensions.mcp")
    async with harness(db_url, CallsTools(), configure=configure) as h:
        server = server_of(h, "broken")
        reply = await answer(h, "u2", "call broken_anything {}")
        chat = await answer(h, "u2", "hello", count=2)
        for attempts in (2, 3):  # the backoff runs on Herald's clock: move it on
            while server.attempts < attempts or server.state != "down":
                await h.advance(1)
                await asyncio.sleep(0.05)
        assert h.herald is not None and h.herald.dispatcher is not None
        assert "broken_anything" not in {d.name for d in h.herald.dispatcher.runner.toolbox.definitions}
    assert reply.startswith("got: error: tool broken_anything is unavailable: MCP server 'broken' is down (")
    assert "No such file or directory: '/nonexistent/mcp-server'" in reply
    assert chat == "echo: hello"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert errors[0].startswith("MCP server 'broken' could not start: ") and "retrying in 1 s" in errors[0]
    assert any("MCP server 'broken' still down" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_server_that_crashes_mid_call_is_answered_and_restarted(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def configure(config: HeraldConfig) -> None:
        config.mcp.servers = {"lucky": stdio(tmp_path / "notes.txt", timeout_s=10)}

    caplog.set_level(logging.ERROR, logger="herald.extensions.mcp")
    async with harness(db_url, CallsTools(), configure=configure) as h:
        server = await connected(h, "lucky")
        crashed = await answer(h, "u3", "call lucky_crash {}")
        await until(lambda: server.connects >= 2 and server.connected.is_set())
        again = await answer(h, "u3", 'call lucky_lucky_number {"seed": 1}', count=2)
    # `crash` is not marked idempotent: it may have done something before the process died.
    assert crashed.startswith(
        "got: outcome unknown: MCP server 'lucky' went away during the call (MCPError: Connection closed)"
    )
    assert again.startswith("got: lucky 10")
    (went,) = [r.getMessage() for r in caplog.records if "went away" in r.getMessage()]
    assert went.startswith("MCP server 'lucky' went away: the connection failed during a call of lucky_crash")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_hanging_tool_cannot_block_the_turn_past_its_timeout(db_url: str, tmp_path: Path) -> None:
    def configure(config: HeraldConfig) -> None:
        config.mcp.servers = {"lucky": stdio(tmp_path / "notes.txt", timeout_s=2)}

    async with harness(db_url, CallsTools(), configure=configure) as h:
        await connected(h, "lucky")
        before = await answer(h, "u4", 'call lucky_lucky_number {"seed": 1}')
        reply = await answer(h, "u4", "call lucky_hang {}", count=2)
        after = await answer(h, "u4", 'call lucky_lucky_number {"seed": 1}', count=3)
    assert before == after  # the same process: one tool hanging does not make the server restart
    assert reply == (
        "got: outcome unknown: MCP server 'lucky' did not answer within 2 s, and lucky_hang may still "
        "have done its work; do not call it again unless the user asks"
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_server_that_stops_answering_is_restarted(db_url: str, tmp_path: Path) -> None:
    """The whole process freezes (SIGSTOP): the call times out, the ping after it too, and the
    server is replaced by a new process."""
    pids = tmp_path / "pids.txt"

    def configure(config: HeraldConfig) -> None:
        config.mcp.servers = {"lucky": stdio(tmp_path / "notes.txt", timeout_s=2, PID_FILE=str(pids))}

    async with harness(db_url, CallsTools(), configure=configure) as h:
        server = await connected(h, "lucky")
        (frozen,) = [int(pid) for pid in pids.read_text().split()]
        os.kill(frozen, signal.SIGSTOP)
        try:
            timed_out = await answer(h, "u7", 'call lucky_lucky_number {"seed": 1}')
            await until(lambda: server.connects >= 2 and server.connected.is_set())
            again = await answer(h, "u7", 'call lucky_lucky_number {"seed": 1}', count=2)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(frozen, signal.SIGKILL)
    assert timed_out == "got: error: MCP server 'lucky' did not answer within 2 s; try again later"
    assert again.startswith("got: lucky 10 from pid") and not again.endswith(f"pid {frozen}")


async def test_a_tool_not_safe_to_rerun_is_not_called_twice_after_a_stop_mid_call(
    db_url: str, tmp_path: Path
) -> None:
    """Herald stops while `append_note` runs; the resumed turn tells the model the outcome is
    unknown instead of appending again."""
    notes = tmp_path / "notes.txt"

    def configure(config: HeraldConfig) -> None:
        config.mcp.servers = {"lucky": stdio(notes, timeout_s=30, NOTE_DELAY_S="20")}

    async with harness(db_url, CallsTools(), configure=configure) as h:
        await connected(h, "lucky")
        await h.user_says("u5", 'call lucky_append_note {"text": "once"}')
        await until(notes.exists)
        await h.restart()
        entries = await h.wait_delivered("c2c", "u5", 1)
    assert notes.read_text() == "once\n"
    assert str(entries[0]["content"]).startswith("got: outcome unknown: Herald stopped while this tool ran")


async def test_sigkill_mid_call_of_a_tool_not_safe_to_rerun_then_restart_does_not_call_it_again(
    db_url: str, tmp_path: Path
) -> None:
    """Herald is killed (SIGKILL) while `append_note` runs; after a restart the turn ends with
    "outcome unknown", the note is written once, and the model was asked each step once."""
    notes, pids = tmp_path / "notes.txt", tmp_path / "pids.txt"
    config, record = tmp_path / "herald.toml", tmp_path / "calls.log"
    text = 'call lucky_append_note {"text": "once"}'
    async with serve(SimSettings(port=0)) as sim, aiohttp.ClientSession() as http:
        config.write_text(
            f'{qq_toml(sim)}\n[storage]\nurl = "{db_url}"\n\n'
            f"[mcp.servers.lucky]\ncommand = {_toml(sys.executable)}\nargs = [{_toml(SERVER)}, 'stdio']\n"
            f"env = {{ NOTES_FILE = {_toml(str(notes))}, PID_FILE = {_toml(str(pids))}, "
            "NOTE_DELAY_S = '60' }\n",
            encoding="utf-8",
        )
        herald = await _launch(config, record)
        try:
            async with http.post(f"{sim.base_url}/_sim/c2c/k1/messages", json={"content": text}) as response:
                assert response.status == 200
            await until(notes.exists)
            herald.send_signal(signal.SIGKILL)
            await herald.wait()
            (orphan,) = pids.read_text().split()  # the server of the killed Herald, still running
            os.kill(int(orphan), signal.SIGKILL)
            herald = await _launch(config, record)

            async def delivered() -> list[dict[str, Any]]:
                async with http.get(f"{sim.base_url}/_sim/transcript?scene=c2c&target=k1") as response:
                    return [e for e in (await response.json())["entries"] if e.get("status") == 200]

            (reply,) = await wait_for(delivered, lambda entries: len(entries) >= 1)
        finally:
            herald.send_signal(signal.SIGTERM)
            await herald.wait()
    assert str(reply["content"]).startswith("got: outcome unknown: Herald stopped while this tool ran")
    assert notes.read_text() == "once\n"
    assert Counter(record.read_text(encoding="utf-8").splitlines()) == {
        f"{text}\tfirst": 1,
        f"{text}\tafter": 1,
    }


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def _launch(config: Path, record: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.extensions.tools_herald", str(config), str(record),
        stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    async with asyncio.timeout(WAIT_S):
        line = await process.stdout.readline()
    assert line.strip() == b"READY", line
    return process
