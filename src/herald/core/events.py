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
    # The quoted message as the platform looked it up, when it can (OneBot's get_msg): who wrote it
    # (None: the bot itself) and its text. Herald's own record of the conversation comes first.
    quoted_author: str | None = None
    quoted_text: str | None = None
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


class MemberChange(StrEnum):
    JOINED = "joined"  # GROUP_MEMBER_ADD
    LEFT = "left"  # GROUP_MEMBER_REMOVE


@dataclass(frozen=True, slots=True)
class MemberEvent:
    """Someone joined or left a group the bot is in (not the bot itself: that is a RelationEvent)."""

    change: MemberChange
    target: Target  # the group
    member_id: str  # the member's openid in that group
    occurred_at: datetime
    operator_id: str | None = None  # who added or removed them, when the platform says


@dataclass(frozen=True, slots=True)
class MessageRecalled:
    """A message was withdrawn (recalled or deleted) where the bot can see it.

    The platform tells only guild scenes: a channel message (MESSAGE_DELETE for every message of a
    private-domain bot, PUBLIC_MESSAGE_DELETE for @bot messages) and a guild DM
    (DIRECT_MESSAGE_DELETE). `message_id` is the recalled message's id, `author_id` who wrote it and
    `operator_id` who recalled it (the author, or an admin)."""

    target: Target
    message_id: str
    occurred_at: datetime
    author_id: str | None = None
    operator_id: str | None = None
    guild_id: str | None = None


@dataclass(frozen=True, slots=True)
class Reaction:
    """A user added (or took back) an emoji reaction in a guild channel: MESSAGE_REACTION_ADD/REMOVE.

    `message_id` is what was reacted to (`target_kind` 0: a message; 1-3: a forum feed, comment or
    reply). `event_id` lets the bot answer the reaction (the platform allows event replies to both).
    """

    target: Target  # the channel
    user_id: str
    message_id: str
    emoji_id: str
    emoji_type: int  # 1: a system emoji, 2: a custom one
    added: bool
    occurred_at: datetime
    target_kind: int = 0
    guild_id: str | None = None
    event_id: str | None = None


class RequestKind(StrEnum):
    FRIEND = "friend"  # someone asks to become the account's friend
    GROUP_INVITE = "group_invite"  # someone invites the account into a group
    GROUP_JOIN = "group_join"  # someone asks to join a group the account administers


@dataclass(frozen=True, slots=True)
class ContactRequest:
    """Someone asks the account for a new relation (OneBot's request events; QQ's official bots
    get none). `target` is the user (a friend request) or the group; `flag` is the platform's
    handle for answering it."""

    kind: RequestKind
    target: Target
    user_id: str
    comment: str
    occurred_at: datetime
    flag: str


InboundEvent = (
    InboundMessage | RelationEvent | Interaction | MemberEvent | MessageRecalled | Reaction | ContactRequest
)
