"""`/metrics`, `/healthz`, `/readyz` and the operator's pages on `[console] host:port`, Starlette
served by `herald.serving`.

`/healthz` says the process is up. `/readyz` says Herald can do its work: the platform's inbound
transport is connected (gateway session) or listening (webhook), and the database answers. Both
answer JSON with the reasons, 200 or 503. `/metrics` is Prometheus text; its gauges (outbox items
by state, gateway reconnects) are read at scrape time.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from herald.config import ConsoleConfig
from herald.console.base import Operations
from herald.console.pages import Pages
from herald.core.platform import TransportHealth
from herald.metrics import CONTENT_TYPE, Metrics
from herald.serving import Listener

log = logging.getLogger(__name__)


@dataclass
class Probes:
    """What the endpoints ask Herald, at request time."""

    transport: Callable[[], TransportHealth]
    database: Callable[[], Awaitable[None]]  # raises if the database does not answer
    outbox_counts: Callable[[], Awaitable[dict[str, int]]]


class ConsoleServer:
    def __init__(
        self, config: ConsoleConfig, metrics: Metrics, probes: Probes, operations: Operations | None = None
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.probes = probes
        self.operations = operations
        self._reconnects_seen = 0
        routes = [
            Route("/healthz", self.healthz),
            Route("/readyz", self.readyz),
            Route("/metrics", self.scrape),
        ]
        middleware = []
        if operations is not None:
            token = config.api_token.get_secret_value() if config.api_token is not None else None
            routes += Pages(operations, token).routes()
            # Sessions are signed with a key made at start: a restart signs everyone out.
            middleware.append(
                Middleware(
                    SessionMiddleware,
                    secret_key=secrets.token_urlsafe(32),
                    session_cookie="herald_console",
                    same_site="strict",
                    https_only=False,
                    max_age=12 * 3600,
                )
            )
        self.app = Starlette(routes=routes, middleware=middleware)
        self._listener: Listener | None = None
        self.port = config.port

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    async def start(self) -> None:
        self._listener = Listener(self.app, self.config.host, self.config.port, setting="[console] port")
        await self._listener.start()
        self.port = self._listener.port
        log.info("console: %s/metrics, /healthz, /readyz", self.base_url)

    async def stop(self) -> None:
        if self._listener is not None:
            if self.operations is not None:
                self.operations.changes.close()  # open live pages end their streams
            await self._listener.stop()
            self._listener = None

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        problems: list[str] = []
        transport = self.probes.transport()
        if not transport.ready:
            problems.append(f"platform {transport.transport} not ready ({transport.detail})")
        try:
            async with asyncio.timeout(5):
                await self.probes.database()
        except Exception as exc:
            problems.append(f"database: {type(exc).__name__}: {exc}")
        body = {
            "status": "ready" if not problems else "not ready",
            "transport": transport.transport,
            "transport_detail": transport.detail,
            "problems": problems,
        }
        return JSONResponse(body, status_code=200 if not problems else 503)

    async def scrape(self, request: Request) -> Response:
        token = self.config.metrics_token
        if token is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token.get_secret_value()}".encode()):
                return Response(
                    "metrics need Authorization: Bearer <[console] metrics_token>\n", status_code=401
                )
        try:
            counts = await self.probes.outbox_counts()
        except Exception as exc:  # the counters still scrape; the gauge keeps its last values
            log.warning("metrics: outbox counts unavailable: %s", exc)
        else:
            for state, count in counts.items():
                self.metrics.outbox_items.labels(state).set(count)
        reconnects = self.probes.transport().reconnects
        if reconnects > self._reconnects_seen:
            self.metrics.gateway_reconnects.inc(reconnects - self._reconnects_seen)
            self._reconnects_seen = reconnects
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)
