"""Inbound events as Herald sees them, after the platform adapter has parsed and verified them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum

from herald.core.target import Target


@dataclass(frozen=True, slots=True)
class Attachment:
    content_type: str
    url: str
    filename: str | None = None
    size: int | None = None
    width: int | None = None
    height: int | None = None
    transcript: str | None = None  # a voice message's text, as the platform recognized it


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message a user sent to the bot.

    `message_id` is the platform's id of *this user's message*: the only kind of id that can
    anchor a passive reply. `event_id` is the dispatch envelope id, kept for event replies.
    """

    target: Target
    message_id: str
    author_id: str
    content: str
    received_at: datetime
    event_id: str | None = None
    attachments: tuple[Attachment, ...] = ()
    mentions_bot: bool = True  # False for a full-group message that did not @ the bot
    guild_id: str | None = None  # guild scenes only
    author_name: str | None = None  # when the platform says (guild nick or username)
    # Quoting handles: this message's own, and the one of the message it quotes (if it does).
    ref: str | None = None
    quotes: str | None = None
    # What the platform says the author is where they wrote: a group's `member_role`
    # (owner / admin / member), a guild member's role ids.
    author_roles: tuple[str, ...] = ()


class RelationKind(StrEnum):
    FRIEND_ADDED = "friend_added"
    FRIEND_REMOVED = "friend_removed"
    PROACTIVE_ALLOWED = "proactive_allowed"  # C2C_MSG_RECEIVE / GROUP_MSG_RECEIVE
    PROACTIVE_REFUSED = "proactive_refused"  # C2C_MSG_REJECT / GROUP_MSG_REJECT
    BOT_ADDED = "bot_added"  # GROUP_ADD_ROBOT
    BOT_REMOVED = "bot_removed"  # GROUP_DEL_ROBOT


@dataclass(frozen=True, slots=True)
class RelationEvent:
    """The relation between the bot and a user or group changed.

    `event_id` is set when the platform lets the bot answer this event (an event anchor).
    """

    kind: RelationKind
    target: Target
    occurred_at: datetime
    event_id: str | None = None
    operator_id: str | None = None


class InteractionAnswer(IntEnum):
    """What the bot answers a click with (the platform shows the user a matching notice)."""

    OK = 0
    FAILED = 1
    TOO_FREQUENT = 2
    DUPLICATE = 3
    NO_PERMISSION = 4
    ADMIN_ONLY = 5


@dataclass(frozen=True, slots=True)
class Interaction:
    """A button click or similar. Whoever handles it answers it through the platform's
    `acknowledge` once it has decided (accepted, a repeat, not allowed ...); the adapter answers
    OK for an event its handler left unanswered."""

    target: Target
    interaction_id: str
    occurred_at: datetime
    user_id: str | None = None
    button_id: str | None = None
    button_data: str | None = None
    kind: int = 0
    event_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


InboundEvent = InboundMessage | RelationEvent | Interaction
