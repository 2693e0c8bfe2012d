"""Serving an ASGI app on host:port with uvicorn: the console's pages and the endpoints platforms
ask for (`core.platform.Endpoint`: QQ's webhook, OneBot's reverse WebSocket and event POSTs).

One `Listener` per port. It binds the socket itself, so a port that cannot be had is an error at
start naming the setting that chose it, and several processes may share a port (SO_REUSEPORT)
when asked to."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING

from herald.core.platform import ASGIApp, Endpoint

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 5


class PortUnavailable(OSError):
    """The port cannot be listened on; the message names the setting to change."""


class Listener:
    def __init__(self, app: ASGIApp, host: str, port: int, *, setting: str, reuse_port: bool = False) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.setting = setting
        self.reuse_port = reuse_port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    @property
    def serving(self) -> bool:
        return self._task is not None and not self._task.done()

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.reuse_port:
            if not hasattr(socket, "SO_REUSEPORT"):
                sock.close()
                raise PortUnavailable(
                    f"{self.setting}: this system has no SO_REUSEPORT to share the port; run one "
                    "process per port"
                )
            # Several Herald processes on one host share the port: the kernel spreads the
            # connections among them.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise PortUnavailable(
                f"{self.setting}: cannot listen on {self.host}:{self.port} ({exc.strerror}); another "
                "program holds the port, so choose a free one"
            ) from exc
        sock.set_inheritable(True)
        return sock

    async def start(self) -> None:
        self._socket = self._bind()
        self.port = self._socket.getsockname()[1]
        import uvicorn  # only when something is served: a gateway-only start does without it

        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", timeout_graceful_shutdown=SHUTDOWN_GRACE_S
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(
            self._server.serve(sockets=[self._socket]), name=f"serve:{self.port}"
        )
        while not self._server.started:
            if self._task.done():
                self._task.result()  # it failed before serving: raise its error
                raise PortUnavailable(
                    f"{self.setting}: the server on {self.host}:{self.port} stopped at once"
                )
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None


@contextlib.asynccontextmanager
async def serve(endpoints: Iterable[Endpoint]) -> AsyncIterator[list[Listener]]:
    """Serve each endpoint on its own port for the block; the endpoint is told its port."""
    listeners: list[Listener] = []
    taken: dict[tuple[str, int], str] = {}
    try:
        for endpoint in endpoints:
            where = (endpoint.host, endpoint.port)
            if endpoint.port and where in taken:
                raise PortUnavailable(
                    f"{endpoint.setting} and {taken[where]} both ask for {endpoint.host}:{endpoint.port}; "
                    "give each its own port"
                )
            taken[where] = endpoint.setting
            listener = Listener(
                endpoint.app,
                endpoint.host,
                endpoint.port,
                setting=endpoint.setting,
                reuse_port=endpoint.reuse_port,
            )
            await listener.start()
            listeners.append(listener)
            if endpoint.bound is not None:
                endpoint.bound(listener.port)
        yield listeners
    finally:
        for listener in reversed(listeners):
            await listener.stop()
