"""The Platform protocol: what delivery and the app need from a chat platform adapter.

`delivery/` speaks only this protocol; `qq/` and `onebot/` implement it. A second platform is a
new sibling of `qq/`, not a change to delivery or the agent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from herald.core.events import InboundEvent, Interaction, InteractionAnswer
from herald.core.segments import Segment
from herald.core.target import Target

EventSink = Callable[[InboundEvent], Awaitable[None]]
# An ASGI application (scope, receive, send), as Starlette and uvicorn define it.
ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


@dataclass(frozen=True, slots=True)
class SendRequest:
    """One outbox item handed to the platform.

    `item_id` is stable across retries of the same item, so the platform can reuse what it
    reserved for it (its anchor, say) and the platform's own dedup makes a resend harmless.
    `trigger_id` is the inbound message (or event) id that caused this send, if any.
    """

    item_id: str
    target: Target
    segments: tuple[Segment, ...]
    trigger_id: str | None = None
    attempt: int = 1


# Labelled values only the platform understands (QQ: ("msg_seq", "3")), shown to the operator as
# "label value", in order; delivery stores them and never reads them.
Details = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Sent:
    """A send that happened: the platform's ids for what arrived and how it was routed.

    `route` is the platform's own word for how it went (QQ: "passive", "event", "proactive",
    "recall"); delivery stores and shows it, never interprets it.
    """

    platform_ids: tuple[str, ...]
    route: str
    anchor_id: str | None = None
    # The handle a user's quote of this message names (its first part's, when it was split).
    ref: str | None = None
    details: Details = ()
    # What the sender should know about this send beyond its route, in words it can relay
    # (QQ recall: "3 of 4 periods left"); not stored, so a receipt read back from a row lacks it.
    note: str = ""


@dataclass(frozen=True, slots=True)
class TransportHealth:
    """How the platform's inbound side is doing, for `/readyz`, metrics and the operator."""

    transport: str  # e.g. "websocket", "webhook"
    ready: bool  # inbound events can arrive right now
    reconnects: int = 0  # sessions opened after the first
    detail: str = ""
    last_event_at: datetime | None = None  # the newest inbound event of any kind
    # Until the platform credential Herald sends with (an access token) must be renewed; None
    # when there is none yet. Renewal is automatic: a credential that stays near 0 means it fails.
    credential_expires_in_s: float | None = None
    # Whether the platform has such a credential at all (QQ's access token; OneBot's is a fixed
    # shared token, never renewed): the operator is shown its expiry only then.
    renews_credential: bool = False


class Permission(StrEnum):
    ALLOWED = "allowed"  # the platform said the target takes proactive messages
    UNKNOWN = "unknown"  # it never said; a send will find out
    REFUSED = "refused"  # it said no, or the platform mode offers none


class NextRoute(StrEnum):
    """How a send would go, in terms every platform shares; `NextSend.via` adds the platform's word."""

    REPLY = "reply"  # quoting an anchor (`NextSend.anchor_id`): a user's message or event
    PROACTIVE = "proactive"  # no anchor
    WAIT = "wait"  # proactive, once the target's rate allows it again
    UNDELIVERABLE = "undeliverable"


@dataclass(frozen=True, slots=True)
class LiveAnchor:
    """An inbound id a reply may still quote: until `usable_until` (the platform's window minus
    the margin the platform adapter keeps), with `replies_left` (None: no documented cap)."""

    id: str
    kind: str  # "message" (msg_id) or "event" (event_id)
    received_at: datetime
    usable_until: datetime
    replies_used: int
    replies_left: int | None


@dataclass(frozen=True, slots=True)
class ProactiveReach:
    """Whether a message without an anchor can go out, and how much of its quota is used."""

    permission: Permission
    reason: str = ""
    used: int | None = None  # sends counted in `period`
    limit: int | None = None
    period: str = ""  # "month" (calendar, the platform's time zone) or "day" (the last 24 h)
    next_allowed_at: datetime | None = None  # set when the quota or rate is used up for now


@dataclass(frozen=True, slots=True)
class ReachNote:
    """One more way (or limit) of reaching the target that only its platform has, as a line for
    the operator (QQ: interactive recall, "period same day (unused) · 4 of 4 periods left")."""

    label: str  # what it is about, e.g. "Interactive recall"
    available: bool  # whether it can be used now
    text: str  # its state, in one line
    reason: str = ""  # why it is (not) available
    next: tuple[str, datetime] | None = None  # what changes next and when ("next period", at)


@dataclass(frozen=True, slots=True)
class NextSend:
    """What the next message to the target would do, and a one-sentence why.

    `via` is the platform's word for the route when it has a kind of its own beyond `route`
    (QQ: "event" for a reply on an event, "interactive recall" for a proactive recall message);
    "" when `route` says it all. Shown in parentheses after the route.
    """

    route: NextRoute
    why: str
    anchor_id: str | None = None
    via: str = ""


@dataclass(frozen=True, slots=True)
class Reach:
    """How a target can be reached now: read, never reserved, so looking changes nothing."""

    at: datetime
    anchors: tuple[LiveAnchor, ...]
    proactive: ProactiveReach
    next_send: NextSend
    notes: tuple[ReachNote, ...] = ()  # what only this platform has (see `ReachNote`)


@dataclass(frozen=True, slots=True)
class Learned:
    """Something the platform refuses this bot as a whole (not one target), learned from its
    answers and kept, so Herald stops asking for it.

    `capability` is "proactive", "markdown" or "intent:<NAME>". A `suspected` one has some
    evidence but not enough yet (`evidence` says how much) and changes nothing.
    """

    capability: str
    reason: str
    learned_at: datetime
    code: int | None = None
    suspected: bool = False
    evidence: tuple[str, ...] = ()  # what was seen (e.g. targets), when it takes several
    needed: int = 1  # how many different pieces of evidence make it learned

    def describe(self) -> str:
        """One line for an operator: what, since when, why."""
        code = f", code {self.code}" if self.code is not None else ""
        if self.suspected:
            seen = f"{len(self.evidence)} of {self.needed} needed{code}"
            return f"{self.capability}: suspected, still asked ({seen}): {self.reason}"
        when = self.learned_at.strftime("%Y-%m-%d %H:%M UTC")
        return f"{self.capability}: refused to this bot since {when}{code}: {self.reason}"


class Platform(Protocol):
    name: str

    async def start(self, sink: EventSink) -> None:
        """Connect and begin handing inbound events to `sink`, in arrival order per conversation.

        The platform considers an event handled once `sink` returns, so `sink` must store what
        it needs to survive a crash before returning.
        """

    async def wait_ready(self) -> None:
        """Return once inbound events can arrive (e.g. the gateway session is identified)."""
        ...

    async def stop(self) -> None: ...

    def health(self) -> TransportHealth:
        """The inbound transport's state now (cheap: no I/O)."""
        ...

    async def reach(self, target: Target) -> Reach:
        """The target's live anchors, proactive state and what the next send would do (no writes)."""
        ...

    async def forecast(
        self, target: Target, times: Sequence[datetime], *, held: int = 0
    ) -> tuple[NextSend, ...]:
        """What one send at each of `times` (ascending) would do, if nothing else is sent meanwhile
        but `held` messages that go first (e.g. the reply to the message being handled). The same
        rules as the route of a real send, projected forward; writes nothing."""
        ...

    def learned(self) -> tuple[Learned, ...]:
        """What the platform refuses this bot, as learned so far (cheap: no I/O)."""
        ...

    async def send(self, request: SendRequest) -> Sent:
        """Deliver one item; raises `herald.core.errors.DeliveryError` if it did not arrive."""
        ...

    async def item_details(self, item_id: str) -> tuple[Details, ...]:
        """What the platform recorded for each part of outbox item `item_id` (QQ: the route it
        reserved per part), for the operator; () when nothing. Reads only; works unstarted."""
        ...


@dataclass(frozen=True, slots=True)
class StreamFrame:
    """A streamed reply after one accepted frame: what the platform needs to go on with it (its
    own data, as text the caller stores and hands back unread) and the send it is so far."""

    handle: str
    sent: Sent


@runtime_checkable
class StreamingPlatform(Protocol):
    """A platform that can show one reply growing as it is written (QQ: C2C `stream_messages`)."""

    def streams_to(self, target: Target) -> bool:
        """Whether a reply to `target` can be streamed at all (its scene has the endpoint)."""
        ...

    async def stream_frame(
        self,
        request: SendRequest,
        handle: str | None,
        text: str,
        *,
        final: bool,
        one_unrecorded: bool = False,
    ) -> StreamFrame:
        """Show `text`, the whole reply so far, as the message `request.item_id`.

        `text` only grows: what an earlier frame showed is always its prefix. `handle` None opens
        the stream (its route is reserved as `send` would, so a plain resend of the same item
        reuses it); `final` ends it. `one_unrecorded`: a frame after `handle` may have arrived
        without its answer being recorded (a crash); the platform goes on after it if so. Raises
        `herald.core.errors.DeliveryError`; on the opening frame that means "not streamed here":
        send the item plainly instead.
        """


@runtime_checkable
class Acknowledges(Protocol):
    """A platform whose clicks (`Interaction`) are answered: the handler decides the answer."""

    async def acknowledge(self, interaction: Interaction, answer: InteractionAnswer) -> None:
        """Answer the click once; a failure is logged, never raised (the event is still handled)."""
        ...


@runtime_checkable
class SharesRates(Protocol):
    """A platform whose rate limits count every send of the bot, whichever process made it: the
    processes that share the bot's work (one database) each keep to a share of them."""

    def share_rates(self, processes: int) -> None:
        """From now on keep to 1/`processes` of each bot-wide rate (1: all of it)."""
        ...


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An HTTP endpoint a platform's inbound transport needs (QQ's webhook, OneBot's reverse
    WebSocket or event POSTs): the app serves it, so no platform runs a server of its own."""

    app: ASGIApp
    host: str
    port: int  # 0: any free port; `bound` is told which
    setting: str  # the config key that sets the port, named when the port cannot be had
    reuse_port: bool = False  # several processes listen on the port (SO_REUSEPORT)
    bound: Callable[[int], None] | None = None


@runtime_checkable
class Serves(Protocol):
    """A platform with endpoints to serve (after `start`; their events reach its sink)."""

    def endpoints(self) -> tuple[Endpoint, ...]: ...
