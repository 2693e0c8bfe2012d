"""From a dispatch envelope to a core event, once.

    pipeline = InboundPipeline(api, on_event, clock)
    gateway = GatewayClient(..., on_dispatch=pipeline.handle_dispatch, ...)

`handle_dispatch(envelope)` parses the envelope (`herald.qq.events`), drops what was seen before
(same envelope id, or same message/interaction id: the platform redelivers), then awaits
`on_event(event)`. An INTERACTION_CREATE is answered (`PUT /interactions/{id}`) by its handler
through `acknowledge` once it decided how (accepted, a repeat, not allowed ...); one its handler
left unanswered is answered `{"code": 0}` when `on_event` returns, so a user never waits on a
spinner for a click Herald took.
The envelopes of one conversation (`order_key`) must be handed in one at a time, in arrival order
(the gateway does so per conversation, the webhook receiver for all envelopes). An id counts as
seen only once `on_event` returned, so an event whose handler failed is handled again if the
platform delivers it again.

`on_event` returning means the event is stored; raising means it is not, and the transports ask
the platform for it again (the gateway resumes from the last stored `s`, the webhook answers 503).
`storage_unavailable` tells a database that cannot write right now (retried without end) from a
bug or refused data (given up after `BUG_ATTEMPTS`, loudly). docs/inbound.md has the whole flow.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from herald.core.clock import Clock, SystemClock
from herald.core.events import InboundEvent, InboundMessage, Interaction, InteractionAnswer
from herald.qq.api import QQApi
from herald.qq.errors import QQApiError
from herald.qq.events import parse_dispatch

log = logging.getLogger(__name__)

SEEN_LIMIT = 10_000
PARSED_LIMIT = 1_024  # over the gateway's window of envelopes in hand
# A handler that fails this often on the same event for a reason other than storage (a bug, not a
# full or unreachable database) gives that event up, loudly, instead of stalling every later one.
BUG_ATTEMPTS = 3


class SeenIds:
    """A bounded set of recently seen ids (oldest forgotten first).

    An id is remembered by its `hash()`: SipHash, 64 bits, keyed at random for each process, and
    cached on the string. 10,000 ids took 2.1 MB as strings and take 1.1 MB as hashes. Two
    different ids share a hash once in 2**64 (the later would be taken for a redelivery). A
    message redelivered after its id was forgotten is still stored once: its id is unique where
    turns are stored."""

    def __init__(self, limit: int = SEEN_LIMIT) -> None:
        self.limit = limit
        self._ids: OrderedDict[int, None] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and hash(key) in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, key: str) -> None:
        hashed = hash(key)
        self._ids[hashed] = None
        self._ids.move_to_end(hashed)
        while len(self._ids) > self.limit:
            self._ids.popitem(last=False)


def storage_unavailable(exc: BaseException) -> bool:
    """The database is full, locked or unreachable: the event is worth asking for again as is
    (a bug or bad data is not: it would fail the same way every time)."""
    from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError | DisconnectionError | OSError | TimeoutError)


def error_cause(exc: BaseException) -> str:
    """The error in one line; a database error without its SQL and parameters (user text)."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _keys(envelope_id: str, event: InboundEvent) -> list[str]:
    keys = [f"env:{envelope_id}"] if envelope_id else []
    if isinstance(event, InboundMessage):
        keys.append(f"msg:{event.target.scene.value}:{event.message_id}")
    elif isinstance(event, Interaction):
        keys.append(f"interaction:{event.interaction_id}")
    return keys


class InboundPipeline:
    def __init__(
        self,
        api: QQApi | None,
        on_event: Callable[[InboundEvent], Awaitable[None]],
        clock: Clock | None = None,
        *,
        seen_limit: int = SEEN_LIMIT,
    ) -> None:
        self.api = api
        self.on_event = on_event
        self.clock: Clock = clock or SystemClock()
        self.seen = SeenIds(seen_limit)
        self.duplicates = 0  # dropped redeliveries (observability, tests)
        self.ignored = 0  # dispatch types Herald does not handle
        self.last_event_at: datetime | None = None  # of any dispatch, handled or not (health)
        self.answered = SeenIds(seen_limit)  # interaction ids acknowledged
        # Envelopes parsed by `order_key`, by identity, until `handle_dispatch` takes them.
        self._parsed: OrderedDict[int, tuple[dict[str, Any], InboundEvent | None]] = OrderedDict()

    def order_key(self, envelope: dict[str, Any]) -> str:
        """The conversation an envelope belongs to, for transports that store several at once:
        the events of one conversation must be handed in one after another. The envelope is
        parsed here, once: `handle_dispatch` takes the event parsed for it."""
        event = self._parse(envelope)
        self._parsed[id(envelope)] = (envelope, event)
        while len(self._parsed) > PARSED_LIMIT:  # envelopes dropped unhandled (a failed store)
            self._parsed.popitem(last=False)
        return event.target.key if event is not None else ""

    def _parse(self, envelope: dict[str, Any]) -> InboundEvent | None:
        t = envelope.get("t")
        if not isinstance(t, str):
            return None
        raw_id = envelope.get("id")
        envelope_id = raw_id if isinstance(raw_id, str) else ""
        return parse_dispatch(t, envelope.get("d"), envelope_id, self.clock.now())

    async def handle_dispatch(self, envelope: dict[str, Any]) -> None:
        t = envelope.get("t")
        if not isinstance(t, str):
            return
        self.last_event_at = self.clock.now()
        raw_id = envelope.get("id")
        envelope_id = raw_id if isinstance(raw_id, str) else ""
        parsed = self._parsed.pop(id(envelope), None)
        event = parsed[1] if parsed is not None and parsed[0] is envelope else self._parse(envelope)
        if event is None:
            self.ignored += 1
            return
        keys = _keys(envelope_id, event)
        if any(key in self.seen for key in keys):
            self.duplicates += 1
            log.info("qq %s %s dropped: already handled (redelivery)", t, envelope_id)
            return
        await self.on_event(event)
        if isinstance(event, Interaction):
            await self.acknowledge(event, InteractionAnswer.OK)
        for key in keys:
            self.seen.add(key)

    async def acknowledge(self, interaction: Interaction, answer: InteractionAnswer) -> None:
        """Answer a click once (a second answer for the same id is not sent)."""
        if interaction.interaction_id in self.answered:
            return
        self.answered.add(interaction.interaction_id)
        if self.api is None:
            return
        try:
            await self.api.ack_interaction(interaction.interaction_id, int(answer))
        except QQApiError as exc:
            # The user sees a spinner or a failure notice; the event itself is still handled.
            log.warning("qq interaction %s not acknowledged: %s", interaction.interaction_id, exc)
