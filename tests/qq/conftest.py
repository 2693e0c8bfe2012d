"""Fixtures for Herald's QQ client tests: a real `herald sim` on a loopback port, Herald's token
manager and API client pointed at it, a control-API helper, an event collector, and a TCP proxy
that can cut or freeze sockets (faults the emulator cannot produce by itself)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest

from herald.core.events import InboundEvent
from herald.qq.api import QQApi
from herald.qq.auth import TokenManager
from herald.sim.app import RunningSim, serve
from herald.sim.settings import GUILD_MESSAGES, PUBLIC_INTENTS, SimSettings
from tests.sim_control import SimControl

# Generous safety limits so a broken client fails instead of hanging; never a timing assertion.
WAIT_S = 20.0

ALL_INTENTS = (1 << 25) | (1 << 26) | (1 << 30) | (1 << 12) | (1 << 9)


class Collector:
    """An `on_event` sink that remembers events and lets a test wait for a count."""

    def __init__(self) -> None:
        self.events: list[InboundEvent] = []
        self._changed = asyncio.Event()

    async def __call__(self, event: InboundEvent) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, count: int) -> list[InboundEvent]:
        async with asyncio.timeout(WAIT_S):
            while len(self.events) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.events


class Proxy:
    """A loopback TCP proxy: `cut()` drops every live connection without a close frame,
    `freeze()` stops forwarding on live connections (a dead peer that keeps the socket open)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter, asyncio.Event]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        frozen = asyncio.Event()
        self._links.append((writer, up_writer, frozen))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst, frozen))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, frozen: asyncio.Event) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await src.read(65536):
                if frozen.is_set():
                    continue  # swallow: the peer looks alive at TCP level but says nothing
                dst.write(data)
                await dst.drain()
        with contextlib.suppress(Exception):
            dst.close()

    def cut(self) -> None:
        for client, upstream, _ in self._links:
            for w in (client, upstream):
                w.transport.abort()
        self._links.clear()

    def freeze(self) -> None:
        for _, _, frozen in self._links:
            frozen.set()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    # These tests act as a private-domain bot: every channel message (GUILD_MESSAGES) is granted.
    async with serve(SimSettings(port=0, intents_allowed=PUBLIC_INTENTS | GUILD_MESSAGES)) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def control(sim: RunningSim, http: aiohttp.ClientSession) -> SimControl:
    return SimControl(sim, http)


@pytest.fixture
def tokens(sim: RunningSim, http: aiohttp.ClientSession) -> TokenManager:
    s = sim.state.settings
    return TokenManager(http, s.app_id, s.secret, sim.token_url)


@pytest.fixture
def api(sim: RunningSim, http: aiohttp.ClientSession, tokens: TokenManager) -> QQApi:
    return QQApi(http, tokens, sim.base_url)


@pytest.fixture
async def proxy(sim: RunningSim) -> AsyncIterator[Proxy]:
    p = Proxy(sim.host, sim.port)
    await p.start()
    yield p
    await p.close()


@pytest.fixture
def sink() -> Collector:
    return Collector()
