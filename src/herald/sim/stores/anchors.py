"""What a send may anchor on, and what the bot sent: inbound message anchors (`msg_id`), event
anchors (`event_id`), the bot's outbound messages (never anchors: using one as `msg_id` is the seed
bug), the quoting handles (`msg_idx`) of both, and guild messages by id."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

Scene = Literal["c2c", "group", "channel", "dm"]
SCENES: tuple[Scene, ...] = ("c2c", "group", "channel", "dm")


def new_message_id() -> str:
    return "ROBOT1.0_" + secrets.token_urlsafe(48) + "!!"


def new_ref_idx() -> str:
    return "REFIDX_" + base64.b64encode(secrets.token_bytes(16)).decode()


@dataclass(slots=True)
class Anchor:
    """An inbound user message: the only kind of id a send may use as `msg_id`."""

    msg_id: str
    scene: Scene
    target: str
    author: str
    received_at: float
    ref_idx: str
    replies: int = 0
    seqs: set[int] = field(default_factory=set)


@dataclass(slots=True)
class EventAnchor:
    """A delivered event's envelope id, usable as `event_id` when its type is replyable."""

    event_id: str
    t: str
    scene: Scene | None
    target: str
    received_at: float
    replies: int = 0
    seqs: set[int] = field(default_factory=set)


@dataclass(slots=True)
class Outbound:
    """A message the bot sent; never an anchor (using its id as msg_id is the seed bug)."""

    id: str
    scene: Scene
    target: str
    sent_at: float
    ref_idx: str
    content: str | None
    keyboard: dict[str, dict[str, Any]] | None = None  # shown buttons by id (markdown sends only)


@dataclass
class Anchors:
    messages: dict[str, Anchor] = field(default_factory=dict)
    events: dict[str, EventAnchor] = field(default_factory=dict)
    outbound: dict[str, Outbound] = field(default_factory=dict)
    ref_idx: dict[str, tuple[Scene, str]] = field(default_factory=dict)  # quoting handle → where
    guild_messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # for GET .../messages/{id}

    def add_message(
        self, scene: Scene, target: str, author: str, now: float, msg_id: str | None = None
    ) -> Anchor:
        anchor = Anchor(
            msg_id=msg_id or new_message_id(),
            scene=scene,
            target=target,
            author=author,
            received_at=now,
            ref_idx=new_ref_idx(),
        )
        self.messages[anchor.msg_id] = anchor
        self.ref_idx[anchor.ref_idx] = (scene, target)
        return anchor

    def add_event(self, event_id: str, t: str, scene: Scene | None, target: str, now: float) -> EventAnchor:
        event = EventAnchor(event_id=event_id, t=t, scene=scene, target=target, received_at=now)
        self.events[event_id] = event
        return event

    def add_outbound(
        self, scene: Scene, target: str, content: str | None, now: float, msg_id: str | None = None
    ) -> Outbound:
        out = Outbound(
            id=msg_id or new_message_id(),
            scene=scene,
            target=target,
            sent_at=now,
            ref_idx=new_ref_idx(),
            content=content,
        )
        self.outbound[out.id] = out
        self.ref_idx[out.ref_idx] = (scene, target)
        return out
