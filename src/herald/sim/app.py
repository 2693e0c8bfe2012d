"""Assembles the emulator: one Starlette app serving REST, the gateway, the control API and the page.

Module contracts (each module owns one idea):
- `state.SimState(settings)`: all emulator state (tokens, anchors, transcript, request log, quotas)
  with `.settings`, `.clock` (`SimClock`) and `.bus` (`EventBus`).
- `rest.routes(state)`, `control.routes(state)`, `gateway.routes(state)`, `page.routes(state)`:
  lists of Starlette routes.
- `webhook.WebhookPusher(state)`: a `WireEndpoint` started and stopped with the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from herald.sim import control, gateway, page, persist, rest, webhook
from herald.sim.inject import Injector
from herald.sim.settings import SimSettings
from herald.sim.state import SimState


def create_app(
    settings: SimSettings | None = None, state: SimState | None = None, state_file: Path | None = None
) -> Starlette:
    """`state_file`: keep the traffic there across restarts (`persist.py`); read here, written
    while the app runs and when it stops."""
    state = state or SimState(settings or SimSettings())
    if state_file is not None:
        persist.load(state, state_file)
    pusher = webhook.WebhookPusher(state)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pusher.start()
        keeper = asyncio.create_task(persist.keep(state, state_file)) if state_file is not None else None
        try:
            yield
        finally:
            if keeper is not None:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
            await pusher.stop()

    app = Starlette(
        # REST first: routes are matched in order and message sends are the hot path.
        routes=[
            *rest.routes(state),
            *control.routes(state),
            *gateway.routes(state),
            *page.routes(state),
        ],
        lifespan=lifespan,
    )
    app.state.sim = state
    return app


@dataclass
class RunningSim:
    state: SimState
    host: str
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def inject(self) -> Injector:
        """Inbound traffic: `sim.inject.c2c("user-1", "hi")`, `.group`, `.channel`, `.dm`, `.event`."""
        return Injector(self.state)

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/app/getAppAccessToken"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/websocket/"


@contextlib.asynccontextmanager
async def serve(
    settings: SimSettings | None = None, state_file: Path | None = None
) -> AsyncIterator[RunningSim]:
    """Run the emulator in this event loop on a real loopback socket (port 0 = any free port);
    with `state_file`, the traffic of an earlier run is restored and kept there."""
    settings = settings or SimSettings(port=0)
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it Nagle + delayed ACK add 40 ms to every request.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    port = sock.getsockname()[1]
    settings.port = port
    state = SimState(settings)
    try:
        app = create_app(state=state, state_file=state_file)
    except BaseException:
        sock.close()
        raise
    config = uvicorn.Config(app, log_level="warning", lifespan="on", ws_ping_interval=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield RunningSim(state=state, host=settings.host, port=port)
    finally:
        server.should_exit = True
        await task
        sock.close()
