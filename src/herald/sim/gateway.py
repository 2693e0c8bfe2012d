"""The WebSocket gateway (rules 6-15; docs/sim.md).

One `GatewayHub` per emulator holds the bot's sessions. A session outlives its socket when the
socket ends in a resumable way (close 4008/4009, op 7, or plain socket loss): it keeps numbering
and buffering dispatches (bounded) so that op 6 Resume can replay what was missed. Every socket
has one writer task draining a queue, so `deliver` never awaits and a slow client never blocks
the event that is being published.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from herald.sim import wire
from herald.sim.bus import DEFAULT_INTENT, INTENT_OF_EVENT, Dispatch, EventBus
from herald.sim.settings import SimSettings

log = logging.getLogger(__name__)

# Every documented intent bit (§2.5); a bit outside this set is "invalid intent" (4013).
KNOWN_INTENTS = DEFAULT_INTENT | (1 << 18) | (1 << 19) | sum(set(INTENT_OF_EVENT.values()))

# Close codes after which the session may be resumed (§2.4); every other server close ends it.
RESUMABLE_CLOSE_CODES = frozenset({4008, 4009})
# "Bot taken down" / "bot banned": no identify succeeds until the switch is cleared.
REFUSAL_CODES = frozenset({4914, 4915})

BACKLOG_LIMIT = 5000  # dispatches kept per session for Resume
DETACHED_LIMIT = 256  # resumable sessions kept without a socket
HEARTBEAT_GRACE = 1.5  # a socket without a heartbeat for grace x interval is closed with 4009

OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_RESUME, OP_RECONNECT = 0, 1, 2, 6, 7
OP_INVALID_SESSION, OP_HELLO, OP_HEARTBEAT_ACK = 9, 10, 11

HEARTBEAT_ACK_FRAME = '{"op":11}'
INVALID_SESSION_FRAME = '{"op":9,"d":false}'
RECONNECT_FRAME = '{"op":7}'


class GatewayState(Protocol):
    """What the gateway needs from `SimState`."""

    @property
    def settings(self) -> SimSettings: ...

    @property
    def bus(self) -> EventBus: ...

    def check_token(self, token: str) -> str: ...


dumps = wire.dumps


@dataclass(eq=False)
class Session:
    id: str
    intents: int
    shard: tuple[int, int]
    seq: int = 0
    backlog: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=BACKLOG_LIMIT))
    # Highest `s` pushed out of the backlog: a Resume from before it cannot be replayed faithfully.
    evicted_upto: int = 0
    conn: Connection | None = None
    resumable: bool = False

    def wants(self, dispatch: Dispatch) -> bool:
        if not self.intents & dispatch.intent:
            return False
        shard_id, shards = self.shard
        return shard_of(dispatch.d, shards) == shard_id

    def record(self, dispatch: Dispatch, d_json: str) -> str:
        """Numbers the dispatch for this session and keeps it for replay."""
        self.seq += 1
        frame = f'{{"op":0,"s":{self.seq},"t":{dumps(dispatch.t)},"id":{dumps(dispatch.id)},"d":{d_json}}}'
        if len(self.backlog) == self.backlog.maxlen:
            self.evicted_upto = self.backlog[0][0]
        self.backlog.append((self.seq, frame))
        return frame

    def control_frame(self, t: str, d: Any) -> str:
        """READY and RESUMED: numbered like any dispatch, but never replayed."""
        self.seq += 1
        return dumps({"op": OP_DISPATCH, "s": self.seq, "t": t, "d": d})

    def describe(self) -> dict[str, Any]:
        return {
            "session_id": self.id,
            "intents": self.intents,
            "shard": list(self.shard),
            "seq": self.seq,
            "online": self.conn is not None,
            "resumable": self.resumable,
            "backlog": len(self.backlog),
        }


def shard_of(d: Any, shards: int) -> int:
    """Guild events are sharded by guild id (§2.3); everything else goes to shard 0."""
    if shards <= 1 or not isinstance(d, dict):
        return 0
    guild_id = d.get("guild_id")
    if isinstance(guild_id, str) and guild_id.isdigit():
        return (int(guild_id) >> 22) % shards
    return 0


@dataclass(frozen=True)
class _Close:
    code: int


class Connection:
    """One socket: a reader (the route handler) and a writer task that owns all sends."""

    def __init__(self, hub: GatewayHub, websocket: WebSocket, heartbeat_interval_ms: int) -> None:
        self.hub = hub
        self.websocket = websocket
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.queue: asyncio.Queue[str | _Close] = asyncio.Queue()
        self.session: Session | None = None
        self.close_code: int | None = None
        self.last_beat = asyncio.get_running_loop().time()

    @property
    def closing(self) -> bool:
        return self.close_code is not None

    def send(self, frame: str) -> None:
        if not self.closing:
            self.queue.put_nowait(frame)

    def close(self, code: int) -> None:
        if not self.closing:
            self.close_code = code
            self.queue.put_nowait(_Close(code))

    async def write_loop(self) -> None:
        try:
            while True:
                item = await self.queue.get()
                if isinstance(item, _Close):
                    await self.websocket.close(code=item.code)
                    return
                await self.websocket.send_text(item)
        except (ValueError, TypeError):
            # Not the peer: a frame that cannot be sent. Never silently: say so and close the
            # socket (resumably), so the client reconnects instead of waiting on a dead writer.
            log.exception("sim gateway: a frame could not be sent; closing the socket with 4009")
            with contextlib.suppress(Exception):
                await self.websocket.close(code=4009)
        except Exception:
            # The peer is gone; the reader sees the disconnect and detaches the session.
            return

    async def watchdog(self) -> None:
        """Heartbeats run on real time: a virtual clock jump must not kill live sockets."""
        loop = asyncio.get_running_loop()
        limit = HEARTBEAT_GRACE * self.heartbeat_interval_ms / 1000
        while not self.closing:
            remaining = self.last_beat + limit - loop.time()
            if remaining <= 0:
                self.hub.end_session(self, 4009)
                return
            await asyncio.sleep(remaining)

    def handle(self, text: str) -> None:
        try:
            payload = json.loads(text)
        except ValueError:
            self.hub.end_session(self, 4002)
            return
        op = payload.get("op") if isinstance(payload, dict) else None
        if not isinstance(op, int) or isinstance(op, bool):
            self.hub.end_session(self, 4002)
            return
        if self.session is None:
            if op == OP_IDENTIFY:
                self.hub.identify(self, payload.get("d"))
            elif op == OP_RESUME:
                self.hub.resume(self, payload.get("d"))
            else:
                self.hub.end_session(self, 4001)
            return
        if op == OP_HEARTBEAT:
            self.last_beat = asyncio.get_running_loop().time()
            self.send(HEARTBEAT_ACK_FRAME)
        elif op in (OP_IDENTIFY, OP_RESUME):
            self.hub.end_session(self, 4002)  # already authenticated on this socket
        else:
            self.hub.end_session(self, 4001)


class GatewayHub:
    """The gateway side of the bus: a `WireEndpoint`."""

    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self.sessions: dict[str, Session] = {}
        self.connections: set[Connection] = set()
        # Set by a 4914/4915 fault or `PUT /_sim/gateway`: identify and resume are refused.
        self.refusal_code: int | None = None

    # -- WireEndpoint -----------------------------------------------------------------------
    def deliver(self, dispatch: Dispatch) -> None:
        d_json: str | None = None
        for session in self.sessions.values():
            if not session.wants(dispatch):
                continue
            if d_json is None:
                d_json = dumps(dispatch.d)
            frame = session.record(dispatch, d_json)
            if session.conn is not None:
                session.conn.send(frame)

    async def close_sessions(self, code: int) -> int:
        if code in REFUSAL_CODES:
            self.refusal_code = code
        live = [conn for conn in self.connections if conn.session is not None and not conn.closing]
        for conn in live:
            self.end_session(conn, code)
        return len(live)

    async def request_reconnect(self) -> int:
        live = [conn for conn in self.connections if conn.session is not None and not conn.closing]
        for conn in live:
            conn.send(RECONNECT_FRAME)
            # The old socket is retired right after op 7; the session waits for a Resume.
            self.end_session(conn, 4009)
        return len(live)

    def online(self) -> bool:
        return any(session.conn is not None for session in self.sessions.values())

    # -- sessions ----------------------------------------------------------------------------
    def end_session(self, conn: Connection, code: int) -> None:
        """Close the socket with `code`; the session survives only if the code is resumable."""
        self._detach(conn, resumable=code in RESUMABLE_CLOSE_CODES)
        conn.close(code)

    def socket_lost(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if conn.session is not None and conn.session.conn is conn:
            self._detach(conn, resumable=True)

    def _detach(self, conn: Connection, *, resumable: bool) -> None:
        session = conn.session
        if session is None or session.conn is not conn:
            return
        session.conn = None
        if not resumable:
            self.sessions.pop(session.id, None)
            return
        session.resumable = True
        detached = [s for s in self.sessions.values() if s.conn is None]
        for stale in detached[: max(0, len(detached) - DETACHED_LIMIT)]:
            del self.sessions[stale.id]

    def _authenticate(self, conn: Connection, d: dict[str, Any]) -> bool:
        token = d.get("token")
        if not isinstance(token, str) or not token.startswith("QQBot "):
            self.end_session(conn, 4004)
            return False
        if self.state.check_token(token.removeprefix("QQBot ").strip()) != "ok":
            self.end_session(conn, 4004)
            return False
        if self.refusal_code is not None:
            self.end_session(conn, self.refusal_code)
            return False
        return True

    def identify(self, conn: Connection, d: Any) -> None:
        if not isinstance(d, dict):
            self.end_session(conn, 4002)
            return
        if not self._authenticate(conn, d):
            return
        intents = d.get("intents", 0)
        if not isinstance(intents, int) or isinstance(intents, bool):
            self.end_session(conn, 4002)
            return
        if intents < 0 or intents & ~KNOWN_INTENTS:
            self.end_session(conn, 4013)
            return
        if intents & ~self.state.settings.intents_allowed:
            self.end_session(conn, 4014)
            return
        shard = parse_shard(d.get("shard", [0, 1]))
        if shard is None:
            self.end_session(conn, 4010)
            return
        session = Session(id=str(uuid.uuid4()), intents=intents, shard=shard, conn=conn)
        self.sessions[session.id] = session
        conn.session = session
        settings = self.state.settings
        ready = {
            "version": 1,
            "session_id": session.id,
            "user": {"id": settings.bot_id, "username": settings.bot_name, "bot": True, "status": 1},
            "shard": list(shard),
        }
        conn.send(session.control_frame("READY", ready))

    def resume(self, conn: Connection, d: Any) -> None:
        if not isinstance(d, dict):
            self.end_session(conn, 4002)
            return
        if not self._authenticate(conn, d):
            return
        session = self.sessions.get(str(d.get("session_id")))
        seq = d.get("seq", 0)
        if seq is None:
            seq = 0
        if not isinstance(seq, int) or isinstance(seq, bool):
            self.end_session(conn, 4002)
            return
        # A live session may be resumed too: the client can notice a dead socket before we do.
        if session is None or seq < session.evicted_upto:
            conn.send(INVALID_SESSION_FRAME)
            self.end_session(conn, 4006)
            return
        if seq > session.seq:
            self.end_session(conn, 4007)
            return
        if session.conn is not None and session.conn is not conn:
            # A second socket resuming a live session takes it over; the old one is retired.
            old = session.conn
            session.conn = None
            old.close(4009)
        session.conn = conn
        session.resumable = False
        conn.session = session
        for s, frame in session.backlog:
            if s > seq:
                conn.send(frame)
        conn.send(session.control_frame("RESUMED", ""))

    def describe(self) -> dict[str, Any]:
        return {
            "refusal_code": self.refusal_code,
            "connections": len(self.connections),
            "sessions": [session.describe() for session in self.sessions.values()],
        }

    # -- the socket --------------------------------------------------------------------------
    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        interval = self.state.settings.heartbeat_interval_ms
        conn = Connection(self, websocket, interval)
        self.connections.add(conn)
        conn.send(dumps({"op": OP_HELLO, "d": {"heartbeat_interval": interval}}))
        writer = asyncio.create_task(conn.write_loop())
        watchdog = asyncio.create_task(conn.watchdog())
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:
                    raw = message.get("bytes") or b""
                    text = raw.decode("utf-8", errors="replace")
                if not conn.closing:
                    conn.handle(text)
        except Exception:
            pass  # a broken socket is a socket loss; the session stays resumable
        finally:
            self.socket_lost(conn)
            watchdog.cancel()
            # The peer is gone: whatever is still queued (a close frame included) can't be read.
            writer.cancel()
            for task in (writer, watchdog):
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def parse_shard(value: Any) -> tuple[int, int] | None:
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    shard_id, shards = value
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (shard_id, shards)):
        return None
    if shards < 1 or not 0 <= shard_id < shards:
        return None
    return shard_id, shards


def routes(state: GatewayState) -> list[BaseRoute]:
    hub = GatewayHub(state)
    state.bus.attach(hub)

    async def describe(request: Request) -> Response:
        if request.method == "PUT":
            body = await request.json()
            code = body.get("refusal_code") if isinstance(body, dict) else None
            if code is not None and code not in REFUSAL_CODES:
                return JSONResponse({"error": "refusal_code must be 4914, 4915 or null"}, status_code=400)
            hub.refusal_code = code
        return JSONResponse(hub.describe())

    return [
        WebSocketRoute("/websocket/", hub.serve),
        WebSocketRoute("/websocket", hub.serve),
        Route("/_sim/gateway", describe, methods=["GET", "PUT"]),
    ]
