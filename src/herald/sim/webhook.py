"""Webhook mode (rules 16-19; docs/sim.md): every dispatch POSTed, signed, to the bot's URL.

The pusher validates the callback URL with op 13 whenever the URL changes (and retries that while
it fails), then pushes each dispatch in publish order. A push is acknowledged by any HTTP 200;
anything else, or a timeout, is redelivered with the same envelope (same `id` and `s`) after a
growing delay, in the background, so one failing event does not hold back the ones after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

import aiohttp
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from herald.sim import signing, wire
from herald.sim.bus import Dispatch, EventBus
from herald.sim.settings import SimSettings

MAX_ATTEMPTS = 5  # first push plus four redeliveries
RETRY_BASE_S = 0.25  # redelivery n waits RETRY_BASE_S * 2**(n-1)
REVALIDATE_EVERY_S = 1.0  # while validation fails, try again at most this often
LOG_LIMIT = 2000

DeliveryStatus = Literal["pending", "retrying", "acked", "failed", "skipped"]


class WebhookState(Protocol):
    @property
    def settings(self) -> SimSettings: ...

    @property
    def bus(self) -> EventBus: ...


@dataclass
class Delivery:
    id: str
    t: str
    s: int
    url: str
    status: DeliveryStatus = "pending"
    attempts: int = 0
    http_status: int | None = None
    error: str | None = None


@dataclass
class Validation:
    url: str | None = None
    status: Literal["none", "ok", "failed"] = "none"
    plain_token: str | None = None
    event_ts: str | None = None
    http_status: int | None = None
    error: str | None = None
    attempts: int = 0


def signed_headers(settings: SimSettings, body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time()))
    return {
        "Content-Type": "application/json",
        "User-Agent": "QQBot-Callback",
        "X-Bot-Appid": settings.app_id,
        "X-Signature-Timestamp": timestamp,
        "X-Signature-Ed25519": signing.sign_push(settings.secret, timestamp, body),
    }


def encode(payload: dict[str, Any]) -> bytes:
    return wire.encode(payload)


_PUSHERS: dict[int, WebhookPusher] = {}


def pusher_for(state: object) -> WebhookPusher | None:
    pusher = _PUSHERS.get(id(state))
    return pusher if pusher is not None and pusher.state is state else None


class WebhookPusher:
    """The webhook side of the bus: a `WireEndpoint` started and stopped with the app."""

    def __init__(self, state: WebhookState) -> None:
        self.state = state
        self.queue: asyncio.Queue[Dispatch] = asyncio.Queue()
        self.seq = 0
        self.log: deque[Delivery] = deque(maxlen=LOG_LIMIT)
        self.validation = Validation()
        self._last_validation_try = 0.0
        self.retry_base_s = RETRY_BASE_S
        self.max_attempts = MAX_ATTEMPTS
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._retries: set[asyncio.Task[None]] = set()
        state.bus.attach(self)
        _PUSHERS[id(state)] = self

    @property
    def settings(self) -> SimSettings:
        return self.state.settings

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._retries) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
        _PUSHERS.pop(id(self.state), None)

    # -- WireEndpoint -----------------------------------------------------------------------
    def deliver(self, dispatch: Dispatch) -> None:
        if self.settings.webhook_url:
            self.queue.put_nowait(dispatch)

    async def close_sessions(self, code: int) -> int:
        return 0  # a webhook has no socket to close

    async def request_reconnect(self) -> int:
        return 0

    def online(self) -> bool:
        url = self.settings.webhook_url
        return bool(url) and self.validation.url == url and self.validation.status == "ok"

    # -- the worker ---------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await self._validate_if_due()
            try:
                dispatch = await asyncio.wait_for(self.queue.get(), timeout=0.25)
            except TimeoutError:
                continue
            url = self.settings.webhook_url
            if not url:
                continue
            await self._validate_if_due()
            self.seq += 1
            delivery = Delivery(id=dispatch.id, t=dispatch.t, s=self.seq, url=url)
            self.log.append(delivery)
            if not self.online():
                delivery.status = "skipped"
                delivery.error = "callback URL not validated"
                continue
            body = encode(dispatch.envelope(self.seq))
            if not await self._attempt(delivery, body) and self.settings.webhook_redeliver:
                task = asyncio.create_task(self._redeliver(delivery, body))
                self._retries.add(task)
                task.add_done_callback(self._retries.discard)

    async def _validate_if_due(self) -> None:
        """A new URL is validated at once; a failing one again at most every REVALIDATE_EVERY_S."""
        url = self.settings.webhook_url
        if not url or self.online():
            return
        if self.validation.url != url or time.monotonic() - self._last_validation_try >= REVALIDATE_EVERY_S:
            await self.validate(url)

    async def validate(self, url: str) -> Validation:
        """Op 13: the bot must echo `plain_token` and sign `event_ts + plain_token` (rule 16)."""
        self._last_validation_try = time.monotonic()
        attempts = self.validation.attempts + 1 if self.validation.url == url else 1
        check = Validation(
            url=url,
            plain_token=secrets.token_urlsafe(15),
            event_ts=str(int(time.time())),
            attempts=attempts,
        )
        assert check.plain_token is not None and check.event_ts is not None
        body = encode({"d": {"plain_token": check.plain_token, "event_ts": check.event_ts}, "op": 13})
        try:
            status, text = await self._post(url, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            check.status, check.error = "failed", f"{type(exc).__name__}: {exc}"
            self.validation = check
            return check
        check.http_status = status
        check.status, check.error = "failed", None
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        expected = signing.validation_signature(self.settings.secret, check.event_ts, check.plain_token)
        if status != 200:
            check.error = f"HTTP {status}"
        elif not isinstance(answer, dict):
            check.error = "answer is not a JSON object"
        elif answer.get("plain_token") != check.plain_token:
            check.error = "plain_token not echoed"
        elif str(answer.get("signature", "")).lower() != expected:
            check.error = "wrong signature"
        else:
            check.status = "ok"
        self.validation = check
        return check

    async def _post(self, url: str, body: bytes) -> tuple[int, str]:
        assert self._session is not None, "the pusher is not started"
        timeout = aiohttp.ClientTimeout(total=self.settings.webhook_timeout_s)
        headers = signed_headers(self.settings, body)
        async with self._session.post(url, data=body, headers=headers, timeout=timeout) as response:
            return response.status, await response.text()

    async def _attempt(self, delivery: Delivery, body: bytes) -> bool:
        """One push; True on HTTP 200, the op 12 ACK whatever the body (rule 19)."""
        delivery.attempts += 1
        try:
            status, _ = await self._post(delivery.url, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            delivery.http_status, delivery.error = None, f"{type(exc).__name__}: {exc}"
        else:
            delivery.http_status = status
            if status == 200:
                delivery.status, delivery.error = "acked", None
                return True
            delivery.error = f"HTTP {status}"
        delivery.status = "retrying" if self.settings.webhook_redeliver else "failed"
        return False

    async def _redeliver(self, delivery: Delivery, body: bytes) -> None:
        while delivery.attempts < self.max_attempts:
            await asyncio.sleep(self.retry_base_s * 2 ** (delivery.attempts - 1))
            if await self._attempt(delivery, body):
                return
        delivery.status = "failed"

    def describe(self) -> dict[str, Any]:
        return {
            "url": self.settings.webhook_url,
            "online": self.online(),
            "public_key": signing.public_key_hex(self.settings.secret),
            "validation": asdict(self.validation),
            "pushed": self.seq,
            "deliveries": [asdict(d) for d in self.log],
        }


def routes(state: object) -> list[BaseRoute]:
    """`GET /_sim/webhook`: validation status and the delivery log; `POST` re-runs validation."""

    async def status(request: Request) -> Response:
        pusher = pusher_for(state)
        if pusher is None:
            return JSONResponse({"error": "no webhook pusher for this emulator"}, status_code=404)
        if request.method == "POST":
            url = pusher.settings.webhook_url
            if not url:
                return JSONResponse({"error": "webhook_url is not set"}, status_code=400)
            await pusher.validate(url)
        return JSONResponse(pusher.describe())

    return [Route("/_sim/webhook", status, methods=["GET", "POST"])]
