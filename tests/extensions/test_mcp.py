"""MCP servers from config: real servers written with the `mcp` package (stdio, started by Herald,
and streamable HTTP, started by the test), their tools called by a scripted model through
Herald's durable turn; servers that fail to start, crash mid-call or hang leave Herald answering."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from herald.config import HeraldConfig, McpServerConfig
from herald.extensions import McpServer
from tests.app.herald_harness import WAIT_S, Harness, harness
from tests.extensions.scripts import CallsTools

SERVER = str(Path(__file__).with_name("mcp_server.py"))


def stdio(notes: Path, timeout_s: float = 30.0) -> McpServerConfig:
    return McpServerConfig(
        command=sys.executable, args=[SERVER, "stdio"], env={"NOTES_FILE": str(notes)}, timeout_s=timeout_s
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


async def connected(h: Harness, name: str) -> McpServer:
    assert h.herald is not None
    server = next(s for s in h.herald.mcp_servers if s.name == name)
    assert await server.wait_connected(WAIT_S), server.error
    return server


async def answer(h: Harness, user: str, text: str, count: int = 1) -> str:
    await h.user_says(user, text)
    entries = await h.wait_delivered("c2c", user, count)
    return str(entries[count - 1]["content"])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_agent_calls_tools_of_a_stdio_and_an_http_server(db_url: str, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    async with http_server(notes) as url:

        def configure(config: HeraldConfig) -> None:
            config.mcp.servers = {"lucky": stdio(notes), "web": McpServerConfig(url=url)}

        async with harness(db_url, CallsTools(), configure=configure) as h:
            await connected(h, "lucky")
            await connected(h, "web")
            assert h.herald is not None
            offered = {d.name for d in h.herald.dispatcher.runner.toolbox.definitions}  # type: ignore[union-attr]
            assert {"lucky_lucky_number", "web_lucky_number", "web_append_note"} <= offered
            reply = await answer(
                h, "u1", 'call lucky_lucky_number {"seed": 2} ; call web_append_note {"text": "hi"}'
            )
    assert reply.startswith("got: lucky 17 from pid") and reply.endswith("| noted: hi")
    assert notes.read_text() == "hi\n"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_server_that_cannot_start_leaves_herald_answering_and_says_why(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def configure(config: HeraldConfig) -> None:
        config.mcp.servers = {"broken": McpServerConfig(command="/nonexistent/mcp-server", timeout_s=5)}

    caplog.set_level(logging.ERROR, logger="herald.extensions.mcp")
    async with harness(db_url, CallsTools(), configure=configure) as h:
        reply = await answer(h, "u2", "call broken_anything {}")
        assert h.herald is not None
        (server,) = h.herald.mcp_servers
        assert not server.connected.is_set() and server.error
        async with asyncio.timeout(WAIT_S):
            while not any("MCP server 'broken' could not start" in r.message for r in caplog.records):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        chat = await answer(h, "u2", "hello", count=2)
    assert "unknown or unavailable tool 'broken_anything'" in reply
    assert chat == "echo: hello"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_server_that_crashes_mid_call_is_answered_with_an_error_and_restarted(
    db_url: str, tmp_path: Path
) -> None:
    def configure(config: HeraldConfig) -> None:
        config.mcp.servers = {"lucky": stdio(tmp_path / "notes.txt", timeout_s=10)}

    async with harness(db_url, CallsTools(), configure=configure) as h:
        server = await connected(h, "lucky")
        crashed = await answer(h, "u3", "call lucky_crash {}")
        async with asyncio.timeout(WAIT_S):
            while server.connects < 2 or not server.connected.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        again = await answer(h, "u3", 'call lucky_lucky_number {"seed": 1}', count=2)
    assert crashed.startswith("got: error:")
    assert again.startswith("got: lucky 10")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_hanging_tool_cannot_block_the_turn_past_its_timeout(db_url: str, tmp_path: Path) -> None:
    def configure(config: HeraldConfig) -> None:
        config.mcp.servers = {"lucky": stdio(tmp_path / "notes.txt", timeout_s=2)}

    async with harness(db_url, CallsTools(), configure=configure) as h:
        await connected(h, "lucky")
        reply = await answer(h, "u4", "call lucky_hang {}")
    assert reply == "got: error: MCP server 'lucky' did not answer within 2 s; try again later"


async def test_a_tool_not_safe_to_rerun_is_not_called_twice_after_a_stop_mid_call(
    db_url: str, tmp_path: Path
) -> None:
    """Herald stops while `append_note` runs; the resumed turn tells the model the outcome is
    unknown instead of appending again."""
    notes = tmp_path / "notes.txt"
    script = CallsTools()

    def configure(config: HeraldConfig) -> None:
        server = stdio(notes, timeout_s=30)
        server.env["NOTE_DELAY_S"] = "20"
        config.mcp.servers = {"lucky": server}

    async with harness(db_url, script, configure=configure) as h:
        await connected(h, "lucky")
        await h.user_says("u5", 'call lucky_append_note {"text": "once"}')
        async with asyncio.timeout(WAIT_S):
            while not notes.exists():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await h.restart()
        await connected(h, "lucky")
        entries = await h.wait_delivered("c2c", "u5", 1)
    assert notes.read_text() == "once\n"
    assert str(entries[0]["content"]).startswith("got: outcome unknown: Herald stopped while this tool ran")
