"""HTTP: Herald calls the implementation's HTTP API (`[onebot] url`, one POST per action) and the
implementation POSTs its events to Herald (`[onebot] host:port` + path), signed with the shared
`secret` (`X-Signature: sha1=<HMAC-SHA1 of the body>`).

Herald answers every event POST with 204: no quick operation. Replies go through the outbox like
every other send, so they are recorded, retried and receipted."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from typing import Any

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from herald.config import OneBotConfig
from herald.core.platform import Endpoint
from herald.onebot.connection import (
    ActionFailed,
    AnswerLost,
    EventFeed,
    EventHandler,
    NotConnected,
    answer_data,
    parse_frame,
)
from herald.onebot.forward import RECONNECT_FIRST_S, RECONNECT_MAX_S, TOKEN_REFUSED, auth_headers

log = logging.getLogger(__name__)

# The HTTP API's own answers for a request it could not take (besides 401/403, the token).
HTTP_RETCODES = {400: 1400, 404: 1404, 406: 1400}


def signature_refusal(secret: str | None, body: bytes, header: str) -> str | None:
    """Why an event POST's signature is refused, or None."""
    if secret is None:
        return None
    if not header:
        return "no X-Signature (set the implementation's secret to [onebot] secret)"
    expected = "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    if not hmac.compare_digest(header.strip().lower().encode(), expected.encode()):
        return "wrong X-Signature (the implementation's secret differs from [onebot] secret)"
    return None


class HttpConnection:
    transport = "http"

    def __init__(self, config: OneBotConfig, on_event: EventHandler) -> None:
        assert config.url is not None  # the config requires it for this transport
        self.config = config
        self.api = config.url.rstrip("/")
        self.feed = EventFeed(on_event)
        self.connections = 0
        self.refused = 0  # event POSTs refused (signature), or calls refused (token)
        self.last_refusal = ""
        self.last_error = ""
        self.connected = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = Starlette(routes=[Route(config.listen_path, self._posted, methods=["POST"])])
        self.port: int | None = None  # once the app serves the endpoint

    @property
    def self_id(self) -> str | None:
        return self.feed.self_id

    @property
    def url(self) -> str:
        """Where the implementation POSTs its events."""
        return f"http://{self.config.host}:{self.port or self.config.port}{self.config.listen_path}"

    @property
    def where(self) -> str:
        return f"API {self.api}, events to {self.url}"

    async def start(self) -> None:
        # A fresh connection per action: on a kept-alive one the server may close just as an
        # action goes out, and that action's fate would be unknown (a message not sent again).
        self._session = aiohttp.ClientSession(
            headers=auth_headers(self.config), connector=aiohttp.TCPConnector(force_close=True)
        )
        self.feed.start()
        self._task = asyncio.create_task(self._login(), name="onebot-login")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.feed.stop()
        if self._session is not None:
            await self._session.close()

    def endpoints(self) -> tuple[Endpoint, ...]:
        return (Endpoint(self.app, self.config.host, self.config.port, "[onebot] port", bound=self._bound),)

    def _bound(self, port: int) -> None:
        self.port = port
        log.info("OneBot over HTTP: API %s, events posted to %s", self.api, self.url)

    async def _login(self) -> None:
        """Ask the API who the account is until it answers: until then Herald does not know the
        implementation is there (HTTP has no connection to see)."""
        pause = RECONNECT_FIRST_S
        while True:
            try:
                data = await self.call("get_login_info", {})
            except (NotConnected, AnswerLost, ActionFailed) as exc:
                log.warning("OneBot API at %s: %s; asking again in %g s", self.api, exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, RECONNECT_MAX_S)
                continue
            if isinstance(data, dict) and data.get("user_id") is not None:
                self.feed.self_id = str(data["user_id"])
            return

    async def _posted(self, request: Request) -> Response:
        body = await request.body()
        secret = self.config.secret
        refused = signature_refusal(
            secret.get_secret_value() if secret is not None else None,
            body,
            request.headers.get("x-signature", ""),
        )
        if refused is not None:
            log.warning("OneBot event POST from %s refused: %s", request.client, refused)
            self.refused += 1
            self.last_refusal = refused
            return JSONResponse({"error": refused}, status_code=403)
        payload = parse_frame(body)
        if payload is None or "post_type" not in payload:
            return JSONResponse({"error": "send one OneBot event as a JSON object"}, status_code=400)
        if self.feed.self_id is None and request.headers.get("x-self-id"):
            self.feed.self_id = request.headers["x-self-id"]
        await self.feed.put(payload)
        return Response(status_code=204)

    async def call(self, action: str, params: dict[str, Any]) -> Any:
        if self._session is None:
            raise NotConnected("the OneBot HTTP client is not started")
        url = f"{self.api}/{action}"
        timeout = aiohttp.ClientTimeout(total=self.config.action_timeout_s)
        try:
            async with self._session.post(url, json=params, timeout=timeout) as response:
                if response.status in TOKEN_REFUSED:
                    self.refused += 1
                    self.last_refusal = (
                        f"the OneBot API refused Herald's access token (HTTP {response.status}): set "
                        "[onebot] access_token to the implementation's access_token"
                    )
                    self.connected.clear()
                    raise NotConnected(self.last_refusal)
                if response.status in HTTP_RETCODES:
                    raise ActionFailed(action, HTTP_RETCODES[response.status], f"HTTP {response.status}")
                if response.status != 200:
                    # The request arrived; whether the action ran is not known.
                    raise AnswerLost(f"HTTP {response.status} from {url}")
                answer = parse_frame(await response.read())
        except aiohttp.ClientConnectorError as exc:
            self.connected.clear()
            self.last_error = f"cannot reach the API: {exc}"
            raise NotConnected(f"cannot reach the OneBot API at {self.api}: {exc}") from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise AnswerLost(f"no answer from {url}: {exc or type(exc).__name__}") from None
        if answer is None:
            raise AnswerLost(f"{url} answered something that is not a JSON object")
        if not self.connected.is_set():
            self.connections += 1
            self.connected.set()
            self.last_error = ""
        return answer_data(action, answer)
