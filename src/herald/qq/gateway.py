"""The WebSocket gateway client.

    gateway = GatewayClient(api, tokens, intents, shard=(0, 1), on_dispatch=pipeline.handle_dispatch,
                            clock=clock)
    task = asyncio.create_task(gateway.run())   # until gateway.stop(), or GatewayError
    await gateway.wait_ready()

`GET /gateway/bot` gives the URL. After Hello (op 10) the client sends Identify (op 2) for a new
session or Resume (op 6, saved `session_id` + last `s`) for an old one, and heartbeats (op 1) at
the server's interval (on real time, as the server's watchdog); a heartbeat that was not
acknowledged (op 11) by the next one means a dead socket: reconnect and resume.

Reconnect rules (§2.4): resume after 4008/4009, op 7 and a socket lost without a close frame;
identify anew after op 9, 4006/4007, 4900-4913 and other codes; after 4004 refresh the token and
resume once more if there is a session (a token that expired mid-session must not cost the events
published meanwhile), else identify; stop with `GatewayError` on 4914/4915 (taken down /
banned), 4013/4014 (intents: the message names the intents asked for) and 4010-4012
(shard/version). Reconnects back off exponentially with jitter, sleeping on the `Clock`
(capped by the same real time).

Every op 0 dispatch except READY/RESUMED is handed to `on_dispatch(envelope)` by a consumer task,
in arrival order, so a slow handler never delays heartbeats. Envelopes of different
conversations (`order_key`) are stored at once, up to `DISPATCH_WINDOW` (storing one event does
not wait for the commits of every event before it); those of one conversation one after another.
Each envelope is *finished* in arrival order: the point below moves past it only once it and
every envelope before it are stored, and an envelope of a conversation is handed over only once
the one before it in that conversation was finished, so a failure (below) keeps the later ones
of its conversation from being stored out of order. Without `order_key`, every envelope waits for
the one before it. The last `s` received is what Resume asks from, and envelopes already received
are handled even if the socket drops meanwhile.

Nothing inbound is lost. `on_dispatch` returning means the event is
stored; raising means it is not. With a `ResumePoint` (`qq/resume.py`) the session and the `s` of
the last *stored* event are persisted, and `run()` starts with a Resume from them, so the platform
replays what arrived while Herald was down. When `on_dispatch` raises (the database is full or
gone), the point does not move: the envelopes received after it are dropped from memory, the
socket is closed, and after a backoff the client resumes from the last stored `s`, so the platform
delivers the failed event and everything after it again, until storing works. A Resume the
platform refuses (op 9, 4006/4007) is logged as a WARNING naming the session and the `s` and time
from which events may have been missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

import aiohttp

from herald.core.clock import Clock, SystemClock
from herald.core.errors import ErrorKind
from herald.qq.api import QQApi
from herald.qq.auth import TokenManager
from herald.qq.errors import QQApiError
from herald.qq.inbound import BUG_ATTEMPTS, error_cause, storage_unavailable

if TYPE_CHECKING:
    from herald.qq.resume import ResumePoint

log = logging.getLogger(__name__)

OnDispatch = Callable[[dict[str, Any]], Awaitable[None]]
# An envelope whose handler was started (None: dropped unhandled): epoch, session, envelope,
# the handler, its conversation, and the future resolved once it is finished (which the next
# envelope of that conversation awaits).
_Started = tuple[int, str | None, dict[str, Any], "asyncio.Future[None] | None", str, "asyncio.Future[None]"]

INTENT_NAMES: dict[int, str] = {
    1 << 0: "GUILDS",
    1 << 1: "GUILD_MEMBERS",
    1 << 9: "GUILD_MESSAGES",
    1 << 10: "GUILD_MESSAGE_REACTIONS",
    1 << 12: "DIRECT_MESSAGE",
    1 << 18: "OPEN_FORUMS_EVENT",
    1 << 19: "AUDIO_OR_LIVE_CHANNEL_MEMBER",
    1 << 24: "GROUP_MEMBER_EVENT",
    1 << 25: "GROUP_AND_C2C_EVENT",
    1 << 26: "INTERACTION",
    1 << 27: "MESSAGE_AUDIT",
    1 << 28: "FORUMS_EVENT",
    1 << 29: "AUDIO_ACTION",
    1 << 30: "PUBLIC_GUILD_MESSAGES",
}

RESUME_CODES = frozenset({4008, 4009})
REIDENTIFY_CODES = frozenset({4001, 4002, 4006, 4007, 9001, 9005, *range(4900, 4914)})
AUTH_FAIL_CODE = 4004
INTENT_CODES = frozenset({4013, 4014})
FATAL_CODES: dict[int, str] = {
    4010: "invalid shard: check [qq] shard ([shard_id, num_shards], shard_id < num_shards)",
    4011: "too many guilds for one connection: raise the number of shards in [qq] shard",
    4012: "invalid gateway version",
    4914: "the bot is taken down (下架): only the sandbox may connect; check its status on q.qq.com",
    4915: "the bot is banned (封禁): do not connect until it is unbanned on q.qq.com",
}
MISSED_ACK_CLOSE = 4000  # our own close code for a socket whose heartbeat went unanswered


def intent_bits(intents: int) -> list[int]:
    return [1 << i for i in range(intents.bit_length()) if intents >> i & 1]


def intent_names(intents: int) -> list[str]:
    return [INTENT_NAMES.get(bit, f"1<<{bit.bit_length() - 1}") for bit in intent_bits(intents)]


# Envelopes being stored at once (see the module's text); the next waits for the oldest to finish.
DISPATCH_WINDOW = 64
IDENTIFY_BUCKET_S = 5.0  # `max_concurrency` new sessions per this many seconds


class GatewayError(Exception):
    """The gateway refused this bot for a reason reconnecting cannot fix."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def intent_error(code: int, intents: int) -> GatewayError:
    names = ", ".join(intent_names(intents)) or "none"
    what = "intent not permitted" if code == 4014 else "invalid intent"
    return GatewayError(
        code,
        f"gateway closed with {code} ({what}): the bot asked for {names} (intents={intents}); "
        "at least one is not allowed for this bot. Remove it from [qq] intents or apply for the "
        "permission on q.qq.com; `herald doctor` names the refused one(s)",
    )


class _Next(Enum):
    RESUME = "resume"
    IDENTIFY = "identify"


class GatewayClient:
    def __init__(
        self,
        api: QQApi,
        tokens: TokenManager,
        intents: int,
        shard: tuple[int, int] = (0, 1),
        on_dispatch: OnDispatch | None = None,
        clock: Clock | None = None,
        *,
        url: str | None = None,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 60.0,
        hello_timeout_s: float = 30.0,
        close_timeout_s: float = 5.0,
        resume_point: ResumePoint | None = None,
        order_key: Callable[[dict[str, Any]], str] | None = None,
    ) -> None:
        self.api = api
        self.tokens = tokens
        self.intents = intents
        self.shard = shard
        self.on_dispatch = on_dispatch
        self.clock: Clock = clock or SystemClock()
        self.url = url
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.hello_timeout_s = hello_timeout_s
        self.close_timeout_s = close_timeout_s  # how long a close handshake may take (dead peers)
        self.resume_point = resume_point
        self.order_key = order_key  # an envelope's conversation (see the module's text)

        self.session_id: str | None = None
        self.seq = 0  # last `s` received in this session
        # What `/gateway/bot` said about sharding and new sessions (none until asked).
        self.recommended_shards: int | None = None
        self.start_limit: dict[str, Any] = {}
        self.bot_user: dict[str, Any] = {}
        self.ready = asyncio.Event()  # set while a socket is identified/resumed
        self.last_close_code: int | None = None
        # Counters (observability, tests).
        self.identifies = 0
        self.resumes = 0
        self.connections = 0
        self.dispatches = 0
        self.store_failures = 0  # dispatches whose handler raised (not stored; replayed)
        self.lost_resumes = 0  # Resumes the platform refused: events may have been missed
        self.identify_waits: list[float] = []  # each wait before identifying (session start limit)

        # The newest point whose event (and every one before it) was handled: (session, s, when).
        self.handled: tuple[str, int, datetime] | None = None
        # Set between an op 6 and its RESUMED: what a refusal may have cost.
        self._resuming: tuple[str, int] | None = None
        # Each socket has an epoch; envelopes of an epoch at or below `_stale_epoch` are dropped
        # unhandled because the platform is asked to send them again.
        self._epoch = 0
        self._stale_epoch = 0
        self._store_failed = False
        self._failing: tuple[str, int, int] | None = None  # (session, s, attempts) of a failing event
        self._failed_since: int | None = None  # failed attempts since the last stored event
        self._closers: set[asyncio.Task[bool]] = set()
        self._queue: asyncio.Queue[tuple[int, str | None, dict[str, Any]]] = asyncio.Queue()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._stopping = asyncio.Event()
        self._acked = True
        self._zombie = False
        self._auth_failures = 0

    def __repr__(self) -> str:
        return f"GatewayClient(intents={self.intents}, shard={self.shard}, session_id={self.session_id!r})"

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect and stay connected until `stop()`; raises `GatewayError` on a fatal refusal."""
        self._stopping.clear()
        if self.resume_point is not None and self.session_id is None:
            try:
                saved = await self.resume_point.load()
            except Exception as exc:
                saved = None
                log.warning(
                    "qq gateway: the saved resume point could not be read (%s); identifying a new "
                    "session, so events published while Herald was down may be missed",
                    error_cause(exc),
                )
            if saved is not None:
                self.session_id, self.seq = saved.session_id, saved.seq
                self.handled = (saved.session_id, saved.seq, saved.updated_at)
        consumer = asyncio.create_task(self._consume(), name="qq-gateway-dispatch")
        failures = 0
        try:
            while not self._stopping.is_set():
                healthy = False
                try:
                    healthy = await self._connect_once()
                except GatewayError:
                    raise
                except QQApiError as exc:
                    if exc.kind in (ErrorKind.PERMANENT, ErrorKind.BUG):
                        raise GatewayError(exc.code, f"cannot open the gateway: {exc}") from None
                    log.warning("qq gateway: %s; will retry", exc)
                    self.url = None if exc.status == 0 else self.url
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    log.warning("qq gateway: connection failed (%s: %s); will retry", type(exc).__name__, exc)
                    self.url = None  # ask /gateway/bot again next time
                if self._stopping.is_set():
                    break
                if self._store_failed:
                    # Storing failed: back off like a failed connection however healthy the
                    # socket was, so a full disk is retried calmly, not in a tight loop.
                    self._store_failed = False
                    failures += 1
                else:
                    failures = 0 if healthy else failures + 1
                await self._pause(self._backoff(failures))
        finally:
            await self._drain(consumer)
            if self.resume_point is not None:
                await self.resume_point.flush()

    async def stop(self) -> None:
        """Close the socket and end `run()` once already-received dispatches are handled."""
        self._stopping.set()
        ws = self._ws
        if ws is not None and not ws.closed:
            await ws.close()

    async def wait_ready(self) -> None:
        """Returns once a socket is identified or resumed (wrap in `asyncio.timeout`)."""
        await self.ready.wait()

    # -- one connection ----------------------------------------------------------------------
    async def _gateway_url(self) -> str:
        if self.url is None:
            info = await self.api.gateway_bot()
            url = info.get("url")
            if not isinstance(url, str) or not url:
                raise QQApiError(200, None, "/gateway/bot answered without url", kind=ErrorKind.RETRY_LATER)
            self.url = url
            shards = info.get("shards")
            self.recommended_shards = shards if isinstance(shards, int) and shards > 0 else None
            limit = info.get("session_start_limit")
            self.start_limit = limit if isinstance(limit, dict) else {}
            if self.recommended_shards is not None and self.recommended_shards > self.shard[1]:
                log.warning(
                    "qq gateway: the platform recommends %d shards, [qq] shard asks for %d: run "
                    "more instances (herald run --workers %d, or [qq] shard = [i, %d] on each), "
                    "or the platform may refuse this one (close code 4011)",
                    self.recommended_shards,
                    self.shard[1],
                    self.recommended_shards,
                    self.recommended_shards,
                )
        return self.url

    def identify_delay_s(self) -> float:
        """How long to wait before identifying a new session: shards identify in buckets of
        `session_start_limit.max_concurrency` per 5 s (shard i in bucket i // max_concurrency,
        so instances started together take turns), and none while `remaining` is 0 (until
        `reset_after`). Resuming creates no session and never waits."""
        delay = 0.0
        concurrency = self.start_limit.get("max_concurrency")
        if self.identifies == 0 and isinstance(concurrency, int) and concurrency > 0:
            delay = (self.shard[0] // concurrency) * IDENTIFY_BUCKET_S
        remaining, reset_after = self.start_limit.get("remaining"), self.start_limit.get("reset_after")
        if remaining == 0 and isinstance(reset_after, int | float) and reset_after > 0:
            delay = max(delay, reset_after / 1000)
        return delay

    async def _connect_once(self) -> bool:
        """One socket from connect to close. Returns True if it got READY/RESUMED (healthy)."""
        url = await self._gateway_url()
        if not self.session_id:
            delay = self.identify_delay_s()
            if delay > 0:
                self.identify_waits.append(delay)
                log.info(
                    "qq gateway: shard %s waits %.1f s before identifying (session_start_limit %s)",
                    list(self.shard),
                    delay,
                    self.start_limit,
                )
                await self._pause(delay)
                if self._stopping.is_set():
                    return False
                self.start_limit = {**self.start_limit, "remaining": None}  # spent on the wait
        ws = await self.api.session.ws_connect(
            url, autoping=True, heartbeat=None, timeout=aiohttp.ClientWSTimeout(ws_close=self.close_timeout_s)
        )
        self._ws = ws
        self.connections += 1
        self._epoch += 1
        self._zombie = False
        heartbeat: asyncio.Task[None] | None = None
        healthy = False
        try:
            if self._stopping.is_set():
                return False
            hello = await ws.receive(timeout=self.hello_timeout_s)
            interval_ms = _hello_interval(hello)
            if interval_ms is None:
                log.warning("qq gateway: no Hello (op 10) first; reconnecting")
                return False
            await self._authenticate(ws)
            heartbeat = asyncio.create_task(
                self._heartbeat(ws, interval_ms / 1000), name="qq-gateway-heartbeat"
            )
            next_step = await self._read(ws)
            healthy = self.ready.is_set()
            if healthy:
                self._auth_failures = 0
            if self._stopping.is_set():
                return healthy
            refusal = "op 9"
            if next_step is None:
                next_step = self._after_close(ws.close_code)
                refusal = f"close code {ws.close_code}"
            if next_step is _Next.IDENTIFY:
                self._session_lost(refusal)
                self.session_id = None
                self.seq = 0
            return healthy
        finally:
            self.ready.clear()
            if heartbeat is not None:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
            if not ws.closed:
                await ws.close()
            self._ws = None

    async def _authenticate(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        token = await self.tokens.get()
        if self.session_id:
            self.resumes += 1
            self._resuming = (self.session_id, self.seq)
            log.info("qq gateway: resuming session %s from s=%s", self.session_id, self.seq)
            frame: dict[str, Any] = {
                "op": 6,
                "d": {"token": f"QQBot {token}", "session_id": self.session_id, "seq": self.seq},
            }
        else:
            self._resuming = None
            self.identifies += 1
            log.info("qq gateway: identifying (intents=%s shard=%s)", self.intents, list(self.shard))
            frame = {
                "op": 2,
                "d": {
                    "token": f"QQBot {token}",
                    "intents": self.intents,
                    "shard": list(self.shard),
                    "properties": {"$os": "linux", "$browser": "herald", "$device": "herald"},
                },
            }
        await ws.send_str(json.dumps(frame))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> _Next | None:
        """Reads frames until the socket ends; returns what to do next if a frame decided it."""
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                data = msg.data if isinstance(msg.data, str) else bytes(msg.data).decode("utf-8", "replace")
                try:
                    frame = json.loads(data)
                except (ValueError, RecursionError):
                    log.warning("qq gateway: ignoring a frame that is not JSON (or nested too deeply)")
                    continue
                if not isinstance(frame, dict):
                    continue
                decided = await self._on_frame(ws, frame)
                if decided is not None:
                    return decided
            else:  # CLOSE, CLOSING, CLOSED, ERROR
                if self._zombie:
                    return _Next.RESUME
                return None

    async def _on_frame(self, ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> _Next | None:
        op = frame.get("op")
        if op == 0:
            if self._epoch <= self._stale_epoch:
                return None  # this socket is being replaced: the platform sends it again
            s = frame.get("s")
            if isinstance(s, int) and not isinstance(s, bool):
                self.seq = s
            t = frame.get("t")
            if t == "READY":
                d = frame.get("d") if isinstance(frame.get("d"), dict) else {}
                assert isinstance(d, dict)
                self.session_id = str(d.get("session_id") or "") or None
                user = d.get("user")
                self.bot_user = user if isinstance(user, dict) else {}
                log.info("qq gateway: READY session %s", self.session_id)
                if self.session_id is not None:
                    # Nothing of the new session is unhandled yet: resume from here after a restart.
                    # Awaited, so the session is on record before the app counts as connected
                    # and before any of its events can be lost with the process.
                    self.handled = (self.session_id, self.seq, self.clock.now())
                    if self.resume_point is not None:
                        await self.resume_point.save(self.session_id, self.seq)
                self.ready.set()
            elif t == "RESUMED":
                log.info("qq gateway: RESUMED session %s at s=%s", self.session_id, self.seq)
                self._resuming = None
                self.ready.set()
            else:
                self.dispatches += 1
                self._queue.put_nowait((self._epoch, self.session_id, frame))
        elif op == 11:
            self._acked = True
        elif op == 1:
            await self._send_heartbeat(ws)
        elif op == 7:
            log.info("qq gateway: server asked to reconnect (op 7)")
            await ws.close()
            return _Next.RESUME
        elif op == 9:
            if self._resuming is None:
                log.info("qq gateway: invalid session (op 9); identifying anew")
            await ws.close()
            return _Next.IDENTIFY
        return None

    def _after_close(self, code: int | None) -> _Next:
        self.last_close_code = code
        if code in INTENT_CODES:
            assert code is not None
            raise intent_error(code, self.intents)
        if code in FATAL_CODES:
            assert code is not None
            raise GatewayError(code, f"gateway closed with {code}: {FATAL_CODES[code]}")
        if code == AUTH_FAIL_CODE:
            self.tokens.invalidate()
            self._auth_failures += 1
            if self.session_id and self._auth_failures == 1:
                # The token expired, not the session: resume with a fresh token so that nothing
                # published meanwhile is lost; if the session is gone too, op 9/4006 follows.
                log.warning("qq gateway: 4004 (token refused); refreshing the token and resuming")
                return _Next.RESUME
            log.warning("qq gateway: 4004 (token refused); refreshing the token and identifying")
            return _Next.IDENTIFY
        if code in RESUME_CODES or code is None or code < 4000:
            log.info("qq gateway: socket closed (code=%s); resuming", code)
            return _Next.RESUME if self.session_id else _Next.IDENTIFY
        log.info("qq gateway: closed with %s; identifying anew", code)
        return _Next.IDENTIFY

    # -- heartbeat ---------------------------------------------------------------------------
    async def _heartbeat(self, ws: aiohttp.ClientWebSocketResponse, interval_s: float) -> None:
        self._acked = True
        while not ws.closed:
            # Real time, not the Clock: the server's watchdog runs on real time, and a virtual
            # clock jump (tests advance hours) must neither flood heartbeats nor starve them.
            await asyncio.sleep(interval_s)
            if ws.closed:
                return
            if not self._acked:
                log.warning("qq gateway: heartbeat not acknowledged; reconnecting")
                self._zombie = True
                await ws.close(code=MISSED_ACK_CLOSE)
                return
            await self._send_heartbeat(ws)

    async def _send_heartbeat(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._acked = False
        with contextlib.suppress(ConnectionError, aiohttp.ClientError, RuntimeError):
            await ws.send_str(json.dumps({"op": 1, "d": self.seq or None}))

    # -- dispatch ----------------------------------------------------------------------------
    async def _consume(self) -> None:
        """Start each envelope's handler in arrival order; `_finish` ends them in that order."""
        started: asyncio.Queue[_Started] = asyncio.Queue(maxsize=DISPATCH_WINDOW)
        last: dict[str, asyncio.Future[None]] = {}  # per conversation: its latest envelope's finish
        finisher = asyncio.create_task(self._finish(started, last), name="qq-gateway-finish")
        loop = asyncio.get_running_loop()
        try:
            while True:
                epoch, session_id, frame = await self._queue.get()
                finished: asyncio.Future[None] = loop.create_future()
                handler: asyncio.Future[None] | None = None
                key = ""
                if epoch > self._stale_epoch and self.on_dispatch is not None:
                    key = self.order_key(frame) if self.order_key is not None else ""
                    before = last.get(key)
                    last[key] = finished
                    handler = asyncio.ensure_future(self._dispatch(epoch, frame, before))
                await started.put((epoch, session_id, frame, handler, key, finished))
        finally:
            finisher.cancel()
            while not started.empty():
                if (unfinished := started.get_nowait()[3]) is not None:
                    unfinished.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await finisher

    async def _dispatch(self, epoch: int, frame: dict[str, Any], before: asyncio.Future[None] | None) -> None:
        if before is not None:
            await before
        if epoch <= self._stale_epoch:
            return  # an envelope before it was not stored: the Resume brings both again, in order
        assert self.on_dispatch is not None
        await self.on_dispatch(frame)

    async def _finish(self, started: asyncio.Queue[_Started], last: dict[str, asyncio.Future[None]]) -> None:
        while True:
            epoch, session_id, frame, handler, key, finished = await started.get()
            try:
                if handler is not None:
                    await self._finished(epoch, session_id, frame, handler)
            finally:
                self._queue.task_done()
                finished.set_result(None)
                if last.get(key) is finished:
                    del last[key]

    async def _finished(
        self, epoch: int, session_id: str | None, frame: dict[str, Any], handler: asyncio.Future[None]
    ) -> None:
        try:
            await handler
        except Exception as exc:
            if epoch > self._stale_epoch:
                self._not_stored(epoch, session_id, frame, exc)
            return
        if epoch <= self._stale_epoch:
            # An envelope before it failed while it was being stored: the Resume brings it again,
            # and the handler drops it as already seen.
            return
        s = frame.get("s")
        if session_id is not None and isinstance(s, int) and not isinstance(s, bool):
            self._handled(session_id, s)
        if self._failed_since is not None:
            log.warning(
                "qq gateway: storing works again: %s %s (s=%s) stored after %d failed "
                "attempt(s); the events replayed since are handled in order",
                frame.get("t"),
                frame.get("id"),
                s,
                self._failed_since,
            )
            self._failed_since = None

    def _handled(self, session_id: str, s: int) -> None:
        if session_id != self.session_id:
            return  # an envelope of a session that was replaced: it cannot be resumed anyway
        self.handled = (session_id, s, self.clock.now())
        if self.resume_point is not None:
            self.resume_point.advance(session_id, s)

    def _not_stored(self, epoch: int, session_id: str | None, frame: dict[str, Any], exc: Exception) -> None:
        """The handler raised: the event is not stored. Ask the platform for it again."""
        self.store_failures += 1
        what = f"{frame.get('t')} {frame.get('id')} (s={frame.get('s')})"
        cause = error_cause(exc)
        s = frame.get("s")
        if session_id is not None and isinstance(s, int) and not storage_unavailable(exc):
            same = self._failing is not None and self._failing[:2] == (session_id, s)
            attempts = self._failing[2] + 1 if same and self._failing is not None else 1
            self._failing = (session_id, s, attempts)
            if attempts >= BUG_ATTEMPTS:
                log.error(
                    "qq gateway: %s failed %d times (%s): a bug, not storage; giving it up so that "
                    "later events are handled. The event is NOT stored",
                    what,
                    attempts,
                    cause,
                    exc_info=exc,
                )
                self._failing = None
                self._handled(session_id, s)
                return
        if session_id is None or session_id != self.session_id:
            log.error(
                "qq gateway: %s was not stored (%s) and its session has ended since: the platform "
                "cannot replay it",
                what,
                cause,
            )
            return
        handled_seq = self.handled[1] if self.handled and self.handled[0] == session_id else 0
        log.warning(
            "qq gateway: %s was not stored (%s); it and every later event will be asked for "
            "again: resuming session %s from s=%s after a backoff",
            what,
            cause,
            session_id,
            handled_seq,
            exc_info=not storage_unavailable(exc),
        )
        self._failed_since = (self._failed_since or 0) + 1
        # Later envelopes of this socket (queued or still arriving) are dropped: the Resume
        # replays them in order after the failed one.
        self._stale_epoch = max(self._stale_epoch, epoch, self._epoch)
        self.seq = handled_seq
        self._store_failed = True
        ws = self._ws
        if ws is not None and not ws.closed:
            # Closed by its own task: this consumer must not wait on the socket's reader.
            closer = asyncio.create_task(ws.close(), name="qq-gateway-close")
            self._closers.add(closer)
            closer.add_done_callback(self._closers.discard)

    def _session_lost(self, refusal: str) -> None:
        """A new session is about to be identified: say what the lost one may have cost."""
        if self._resuming is None:
            return
        session_id, seq = self._resuming
        self._resuming = None
        self.lost_resumes += 1
        since = ""
        if self.handled is not None and self.handled[0] == session_id:
            since = f" since {self.handled[2].isoformat(timespec='seconds')}"
        log.warning(
            "qq gateway: the platform refused to resume session %s (%s); identifying a new "
            "session. Events published%s after s=%s were not replayed and may have been missed",
            session_id,
            refusal,
            since,
            seq,
        )

    async def _drain(self, consumer: asyncio.Task[None]) -> None:
        try:
            if not consumer.done():
                await self._queue.join()
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer

    # -- timing ------------------------------------------------------------------------------
    def _backoff(self, failures: int) -> float:
        ceiling: float = min(self.backoff_cap_s, self.backoff_base_s * float(2 ** min(failures, 16)))
        return ceiling * random.uniform(0.5, 1.0)

    async def _pause(self, seconds: float) -> None:
        """Backs off on the Clock, never longer than the same real time, and wakes at once on
        `stop()`: a virtual clock can shorten a backoff but cannot stall a reconnect."""
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        real = asyncio.ensure_future(asyncio.sleep(seconds))
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({sleeper, real, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, real, stopper):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def _hello_interval(msg: aiohttp.WSMessage) -> int | None:
    if msg.type is not aiohttp.WSMsgType.TEXT:
        return None
    try:
        frame = json.loads(msg.data)
    except ValueError:
        return None
    if not isinstance(frame, dict) or frame.get("op") != 10:
        return None
    d = frame.get("d")
    interval = d.get("heartbeat_interval") if isinstance(d, dict) else None
    if isinstance(interval, int | float) and not isinstance(interval, bool) and interval > 0:
        return int(interval)
    return 45_000
