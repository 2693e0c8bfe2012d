"""`OneBotPlatform`: Herald's `core.Platform` for a OneBot v11 implementation.

Inbound: the implementation's events (over the configured transport: `reverse.py`, `forward.py`
or `http.py`) → `events.py` → the app's sink. Outbound: one outbox item → `message.render` → one
`send_private_msg` / `send_group_msg` per message → `Sent`, or `DeliveryError`.

OneBot has no reply windows, anchors or quotas: every target can be sent to at any time, so
`reach` and `forecast` always say "proactive" and the reply ledger has nothing to keep.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from herald.config import OneBotConfig
from herald.core.clock import Clock, SystemClock
from herald.core.errors import DeliveryError, ErrorKind
from herald.core.events import ContactRequest, InboundMessage, RequestKind
from herald.core.platform import (
    Details,
    Endpoint,
    EventSink,
    Learned,
    NextRoute,
    NextSend,
    Permission,
    ProactiveReach,
    Reach,
    SendRequest,
    Sent,
    TransportHealth,
)
from herald.core.target import Scene, Target
from herald.onebot.connection import ActionFailed, AnswerLost, Connection, EventHandler, NotConnected
from herald.onebot.events import to_core
from herald.onebot.forward import ForwardSocket
from herald.onebot.http import HttpConnection
from herald.onebot.message import read, render, segments_of
from herald.onebot.record import SendRecord
from herald.onebot.reverse import ReverseSocket
from herald.store.db import Database

log = logging.getLogger(__name__)

# retcodes that say the request itself is wrong (the spec's 1400/1404; go-cqhttp's 102 "invalid
# parameter"): sending it again cannot help.
BAD_REQUEST = frozenset({102, 1400, 1404})
# Not allowed: the account may not send there (the spec's 1401/1403).
NOT_ALLOWED = frozenset({1401, 1403})
ACTIONS = {Scene.C2C: ("send_private_msg", "user_id"), Scene.GROUP: ("send_group_msg", "group_id")}
# A quoted message is looked up before its message is stored; a slow answer must not hold that up.
QUOTE_LOOKUP_S = 3.0
ALWAYS = "OneBot has no reply windows: every message goes out as sent"


def connect(config: OneBotConfig, on_event: EventHandler) -> Connection:
    """The connection of `[onebot] transport`."""
    if config.transport == "forward-ws":
        return ForwardSocket(config, on_event)
    if config.transport == "http":
        return HttpConnection(config, on_event)
    return ReverseSocket(config, on_event)


class OneBotPlatform:
    def __init__(self, config: OneBotConfig, db: Database, clock: Clock | None = None) -> None:
        self.config = config
        self.name = config.name
        self.clock = clock or SystemClock()
        self.record = SendRecord(db)
        self.connection = connect(config, self._on_event)
        self._sink: EventSink | None = None
        self._last_event_at: datetime | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self, sink: EventSink) -> None:
        self._sink = sink
        await self.connection.start()

    def endpoints(self) -> tuple[Endpoint, ...]:
        return self.connection.endpoints()

    async def wait_ready(self) -> None:
        await self.connection.connected.wait()

    async def stop(self) -> None:
        await self.connection.stop()

    def health(self) -> TransportHealth:
        link = self.connection
        connected = link.connected.is_set()
        detail = f"account {link.self_id} connected" if connected else f"no implementation at {link.where}"
        if link.last_error and not connected:
            detail += f" ({link.last_error})"
        if link.refused and not connected and link.last_refusal != link.last_error:
            detail += f"; refused {link.refused}: {link.last_refusal}"
        return TransportHealth(
            transport=link.transport,
            ready=connected,
            reconnects=max(link.connections - 1, 0),
            detail=detail,
            last_event_at=self._last_event_at,
        )

    def learned(self) -> tuple[Learned, ...]:
        return ()

    async def _on_event(self, payload: dict[str, object]) -> None:
        self._last_event_at = self.clock.now()
        event = to_core(payload, self.name, self.connection.self_id or "", self.clock.now())
        if isinstance(event, InboundMessage) and event.quotes is not None:
            event = await self._look_up_quote(event)
        if event is not None and self._sink is not None:
            await self._sink(event)
        if isinstance(event, ContactRequest):
            await self.answer(event)

    async def _look_up_quote(self, message: InboundMessage) -> InboundMessage:
        """The message with what it quotes, as `get_msg` tells it: the model then reads the quote
        even when Herald never saw the quoted message. Without an answer, the message as it is."""
        assert message.quotes is not None
        quoted_id: int | str = int(message.quotes) if message.quotes.lstrip("-").isdigit() else message.quotes
        try:
            async with asyncio.timeout(QUOTE_LOOKUP_S):
                data = await self.connection.call("get_msg", {"message_id": quoted_id})
            text = read(segments_of(data["message"]), self.connection.self_id or "").content
        except (NotConnected, AnswerLost, ActionFailed, TimeoutError, TypeError, KeyError, ValueError) as exc:
            log.info("OneBot get_msg %s (a quoted message): %s", message.quotes, exc or type(exc).__name__)
            return message
        sender = data.get("sender") if isinstance(data.get("sender"), dict) else {}
        author = str(sender.get("user_id", "")) if isinstance(sender, dict) else ""
        by_bot = author == self.connection.self_id
        return replace(message, quoted_author=None if by_bot else author or "someone", quoted_text=text)

    async def answer(self, request: ContactRequest) -> None:
        """Accept or refuse a friend request or group invitation as `[onebot] friend_requests` /
        `group_invites` say; a request to join a group is its admins' to answer."""
        policy = {
            RequestKind.FRIEND: self.config.friend_requests,
            RequestKind.GROUP_INVITE: self.config.group_invites,
        }
        answer = policy.get(request.kind, "leave")
        who = f"{request.kind.value} request from {request.user_id}" + (
            f" for group {request.target.id}" if request.target.scene is Scene.GROUP else ""
        )
        if answer == "leave":
            log.info("OneBot %s left for the account's owner to answer: %s", who, request.comment)
            return
        approve = answer == "accept"
        if request.kind is RequestKind.FRIEND:
            action, params = "set_friend_add_request", {"flag": request.flag, "approve": approve}
        else:
            action = "set_group_add_request"
            params = {"flag": request.flag, "sub_type": "invite", "type": "invite", "approve": approve}
        try:
            await self.connection.call(action, params)
        except (NotConnected, AnswerLost, ActionFailed) as exc:
            log.warning("OneBot %s not answered (%s): %s", who, answer, exc)
            return
        log.info(
            "OneBot %s %s ([onebot] %s)",
            who,
            "accepted" if approve else "refused",
            "friend_requests" if request.kind is RequestKind.FRIEND else "group_invites",
        )

    # --- reaching a target ---------------------------------------------------------------------

    def _next(self, target: Target) -> NextSend:
        if target.scene not in ACTIONS:
            return NextSend(NextRoute.UNDELIVERABLE, f"OneBot has no {target.scene.value} conversations")
        return NextSend(NextRoute.PROACTIVE, ALWAYS)

    async def reach(self, target: Target) -> Reach:
        send = self._next(target)
        permission = Permission.REFUSED if send.route is NextRoute.UNDELIVERABLE else Permission.ALLOWED
        return Reach(self.clock.now(), (), ProactiveReach(permission, send.why), send)

    async def forecast(
        self, target: Target, times: Sequence[datetime], *, held: int = 0
    ) -> tuple[NextSend, ...]:
        return tuple(self._next(target) for _ in times)

    async def item_details(self, item_id: str) -> tuple[Details, ...]:
        parts = await self.record.parts(item_id)
        return tuple(
            (
                ("message", str(part + 1)),
                ("requested", row.requested_at.isoformat(timespec="seconds")),
                ("message_id", row.message_id or "no answer (may have arrived)"),
            )
            for part, row in sorted(parts.items())
        )

    # --- sending -------------------------------------------------------------------------------

    async def send(self, request: SendRequest) -> Sent:
        target = request.target
        if target.scene not in ACTIONS:
            raise DeliveryError(ErrorKind.PERMANENT, f"OneBot has no {target.scene.value} conversations")
        action, key = ACTIONS[target.scene]
        chat_id = int(target.id) if target.id.isdigit() else target.id
        item = request.item_id
        done = await self.record.parts(item)
        ids: list[str] = []
        for part, message in enumerate(render(request.segments, self.config.max_text_chars)):
            row = done.get(part)
            if row is not None and row.message_id is not None:
                ids.append(row.message_id)  # confirmed by an earlier attempt: not sent again
                continue
            if row is not None:
                raise DeliveryError(
                    ErrorKind.OUTCOME_UNKNOWN,
                    f"{action}: message {part + 1} was asked for at {row.requested_at:%H:%M:%S} and no "
                    "answer came (a restart or a timeout): it may have arrived, so it is not sent again",
                )
            await self.record.requested(item, part, self.clock.now())
            try:
                data = await self.connection.call(action, {key: chat_id, "message": message})
            except NotConnected as exc:
                await self.record.not_sent(item, part)
                raise DeliveryError(ErrorKind.RETRY_LATER, f"not sent: {exc}{_after(ids)}") from None
            except AnswerLost as exc:
                # The implementation may have sent it; OneBot has no way to ask, and resending
                # could show it twice: the record keeps it asked for and unanswered.
                raise DeliveryError(ErrorKind.OUTCOME_UNKNOWN, f"{action}: {exc}{_after(ids)}") from None
            except ActionFailed as exc:
                await self.record.not_sent(item, part)
                raise DeliveryError(_kind(exc.retcode), f"{exc}{_after(ids)}", code=exc.retcode) from None
            message_id = data.get("message_id") if isinstance(data, dict) else None
            ids.append(str(message_id) if message_id is not None else "")
            await self.record.answered(item, part, ids[-1])
        return Sent(platform_ids=tuple(ids), route=action, ref=ids[0] if ids else None)


def _after(ids: list[str]) -> str:
    # A message split in parts may have sent some; a retry goes on after them.
    return f" (after {len(ids)} of its messages were sent)" if ids else ""


def _kind(retcode: int) -> ErrorKind:
    if retcode in BAD_REQUEST:
        return ErrorKind.BUG
    if retcode in NOT_ALLOWED:
        return ErrorKind.PERMANENT
    return ErrorKind.RETRY_LATER  # 100/103 and implementation codes: failures of the moment
