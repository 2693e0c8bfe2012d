"""What every OneBot transport shares: the `Connection` protocol the platform speaks, the errors
of an action, the feed that hands events on, the table of actions waiting for their answer, and
the endpoint for the transports the implementation connects to.

Three transports implement `Connection` (docs/onebot.md, "Transports"): `reverse.py` (the
implementation connects to Herald's WebSocket), `forward.py` (Herald connects to the
implementation's WebSocket) and `http.py` (Herald calls the implementation's HTTP API and the
implementation POSTs its events to Herald).

Events are handed on from their own task, so a slow event handler never holds up the answers to
the actions a turn is waiting on."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from herald.core.platform import Endpoint

log = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]
# How many events may wait for the handler before reading from the transport pauses.
EVENT_BACKLOG = 1000


class NotConnected(Exception):
    """The action was not sent: nothing reached the implementation."""


class AnswerLost(Exception):
    """The action was sent but no answer came (timeout or the connection closed): it may have run."""


class ActionFailed(Exception):
    def __init__(self, action: str, retcode: int, message: str) -> None:
        super().__init__(f"{action}: retcode {retcode}{f' ({message})' if message else ''}")
        self.retcode = retcode
        self.message = message


class Connection(Protocol):
    """One transport to one OneBot implementation."""

    transport: str  # "reverse-websocket", "forward-websocket" or "http", for health
    connected: asyncio.Event  # set while actions can reach the implementation
    refused: int  # how often the other side's credentials were refused, or refused Herald's
    last_refusal: str
    last_error: str  # why the transport is down, when it knows ("" otherwise)
    connections: int  # how often the transport came up

    @property
    def self_id(self) -> str | None:
        """The account's QQ number, once the implementation said it."""
        ...

    @property
    def url(self) -> str:
        """Where Herald listens (reverse-ws; http: where events are POSTed) or connects (forward-ws)."""
        ...

    @property
    def where(self) -> str:
        """Where the transport listens or connects, for the operator."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def endpoints(self) -> tuple[Endpoint, ...]:
        """What the app serves for this transport: where the implementation connects or POSTs."""
        ...

    async def call(self, action: str, params: dict[str, Any]) -> Any:
        """Run one action; its `data` when it succeeds. Raises NotConnected (not sent),
        AnswerLost (sent, no answer), ActionFailed (the implementation said no)."""
        ...


def answer_data(action: str, answer: dict[str, Any]) -> Any:
    """The `data` of an action's answer, or ActionFailed when the answer says it failed (retcode 1
    is "accepted, runs later": it did not fail)."""
    status, retcode = answer.get("status"), answer.get("retcode", 0)
    if status == "failed" or (isinstance(retcode, int) and retcode not in (0, 1)):
        message = str(answer.get("wording") or answer.get("message") or answer.get("msg") or "")
        raise ActionFailed(action, int(retcode) if isinstance(retcode, int) else -1, message)
    return answer.get("data")


def token_refusal(expected: str | None, header: str, query_token: str) -> str | None:
    """Why a connecting implementation's credentials are refused, or None. The token comes as
    `Authorization: Bearer <token>` (or `Token <token>`) or as the `access_token` query parameter."""
    if expected is None:
        return None
    scheme, _, given = header.partition(" ")
    if scheme.lower() not in ("bearer", "token"):
        given = query_token
    if not given:
        return "no access token given (set the implementation's access_token to [onebot] access_token)"
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return "wrong access token (the implementation's access_token differs from [onebot] access_token)"
    return None


class EventFeed:
    """Events in arrival order, handed to `on_event` one at a time from their own task. Notes
    the account's id from each event's `self_id`."""

    def __init__(self, on_event: EventHandler) -> None:
        self.on_event = on_event
        self.self_id: str | None = None
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue(EVENT_BACKLOG)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._hand_on(), name="onebot-events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def put(self, payload: dict[str, Any]) -> None:
        if payload.get("self_id") is not None:
            self.self_id = str(payload["self_id"])
        await self._events.put(payload)

    async def _hand_on(self) -> None:
        while True:
            event = await self._events.get()
            try:
                await self.on_event(event)
            except Exception:
                log.exception("OneBot event not handled: %.200s", json.dumps(event, ensure_ascii=False))


def parse_frame(raw: str | bytes) -> dict[str, Any] | None:
    """One JSON object received from the implementation, or None (logged) for anything else."""
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        log.warning("OneBot sent something that is not JSON (ignored): %.200r", raw)
        return None
    if not isinstance(payload, dict):
        log.warning("OneBot sent a JSON value that is not an object (ignored): %.200r", raw)
        return None
    return payload


async def take_frame(raw: str | bytes, feed: EventFeed, waiting: Waiting) -> None:
    """One frame of a WebSocket: an event goes to the feed, an answer to the action awaiting it."""
    payload = parse_frame(raw)
    if payload is None:
        return
    if "post_type" in payload:
        await feed.put(payload)
    else:
        waiting.answered(payload)


class Waiting:
    """Actions sent over a WebSocket, waiting for the answer with their `echo`."""

    def __init__(self) -> None:
        self._futures: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._echo = itertools.count(1)

    async def call(
        self, send: Callable[[str], Awaitable[object]], action: str, params: dict[str, Any], timeout_s: float
    ) -> Any:
        """Send one action with `send` and wait for its answer's `data` (see `Connection.call`)."""
        echo = str(next(self._echo))
        future = self._futures[echo] = asyncio.get_running_loop().create_future()
        frame = json.dumps({"action": action, "params": params, "echo": echo}, ensure_ascii=False)
        try:
            try:
                await send(frame)
            except Exception as exc:
                raise NotConnected(f"the connection closed: {exc}") from exc
            try:
                async with asyncio.timeout(timeout_s):
                    answer = await future
            except TimeoutError:
                raise AnswerLost(f"no answer within {timeout_s:g} s") from None
        finally:
            self._futures.pop(echo, None)
        return answer_data(action, answer)

    def answered(self, payload: dict[str, Any]) -> None:
        echo = payload.get("echo")
        future = self._futures.get(str(echo)) if echo is not None else None
        if future is None:
            log.warning("OneBot answered an action Herald is not waiting for (echo %r)", echo)
        elif not future.done():
            future.set_result(payload)

    def lose_all(self, why: str) -> None:
        for future in self._futures.values():
            if not future.done():
                future.set_exception(AnswerLost(why))
