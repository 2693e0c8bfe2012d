"""The Platform protocol: what delivery and the app need from a chat platform adapter.

`delivery/` speaks only this protocol; `qq/` implements it. A second platform is a new sibling
of `qq/`, not a change to delivery or the agent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from herald.core.events import InboundEvent
from herald.core.segments import Segment
from herald.core.target import Target

EventSink = Callable[[InboundEvent], Awaitable[None]]


class DeliveryMode(StrEnum):
    PASSIVE = "passive"  # a reply anchored on a user's message (msg_id + msg_seq)
    EVENT = "event"  # a reply anchored on a replyable event (event_id)
    PROACTIVE = "proactive"  # no anchor


@dataclass(frozen=True, slots=True)
class SendRequest:
    """One outbox item handed to the platform.

    `item_id` is stable across retries of the same item, so the platform can reuse what it
    reserved for it (its anchor and msg_seq) and the platform's own dedup makes a resend harmless.
    `trigger_id` is the inbound message (or event) id that caused this send, if any.
    """

    item_id: str
    target: Target
    segments: tuple[Segment, ...]
    trigger_id: str | None = None
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class Sent:
    """A send that happened: the platform's ids for what arrived and how it was routed."""

    platform_ids: tuple[str, ...]
    mode: DeliveryMode
    anchor_id: str | None = None
    msg_seq: int | None = None


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

    async def send(self, request: SendRequest) -> Sent:
        """Deliver one item; raises `herald.core.errors.DeliveryError` if it did not arrive."""
        ...
