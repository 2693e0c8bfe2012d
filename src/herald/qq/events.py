"""QQ dispatch payloads → Herald's core inbound events.

    event = parse_dispatch(t, d, envelope_id, received_at)   # InboundEvent | None

The pydantic models below accept what the platform sends and ignore fields they do not know.
Message events become `InboundMessage` (`message_id` = `d.id`, the only kind of id that can
anchor a passive reply); relation events become `RelationEvent`; button clicks become
`Interaction`; members joining or leaving a group become `MemberEvent`, guild message deletions
`MessageRecalled`, guild emoji reactions `Reaction`. `event_id` (the envelope id) is set only on
events the platform lets the bot answer by event id (§4.10): INTERACTION_CREATE, FRIEND_ADD,
C2C_MSG_RECEIVE, GROUP_ADD_ROBOT, GROUP_MSG_RECEIVE, MESSAGE_REACTION_ADD/REMOVE. Unknown types
give `None` (logged at debug).

Bad input is cleaned or rejected here, where it enters, never dropped silently:
- every string is made storable: a lone surrogate (no UTF-8 form) becomes U+FFFD, a NUL byte
  (PostgreSQL text cannot hold it) is removed;
- one malformed attachment or mention (not an object, fields of the wrong type) is dropped with
  a WARNING; the message keeps the rest;
- an event whose ids do not fit the store (`MAX_ID_CHARS`: a message, interaction or envelope
  id, or a target key) is rejected with a WARNING naming the event and the length: it can be
  neither recorded nor answered (a passive reply needs the stored message id);
- a payload that does not fit at all is rejected with a WARNING naming the field.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from herald.core.events import (
    Attachment,
    InboundEvent,
    InboundMessage,
    Interaction,
    MemberChange,
    MemberEvent,
    MessageRecalled,
    Reaction,
    RelationEvent,
    RelationKind,
)
from herald.core.target import Scene, Target

log = logging.getLogger(__name__)

# Event types whose envelope id may be used as `event_id` (§4.10 official list).
EVENT_REPLYABLE = frozenset(
    {"INTERACTION_CREATE", "FRIEND_ADD", "C2C_MSG_RECEIVE", "GROUP_ADD_ROBOT", "GROUP_MSG_RECEIVE"}
)


# The longest id the store keeps (String(255) columns: anchors, turn source ids, target keys).
MAX_ID_CHARS = 255

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def clean_text(value: str) -> str:
    """Text the database can store: lone surrogates → U+FFFD, NUL removed."""
    if _UNSTORABLE.search(value) is None:
        return value
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", value)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @field_validator("*", mode="after")
    @classmethod
    def _clean(cls, value: Any) -> Any:
        return clean_text(value) if isinstance(value, str) else value


def _str(value: Any) -> Any:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class QQAttachment(_Model):
    url: str = ""
    content_type: str = ""
    filename: str | None = None
    size: int | None = None
    width: int | None = None
    height: int | None = None
    asr_refer_text: str | None = None  # voice: the platform's transcript

    @field_validator("size", "width", "height", mode="before")
    @classmethod
    def _num(cls, value: Any) -> Any:
        if isinstance(value, str):
            return int(value) if value.strip().isdigit() else None
        return value

    def to_core(self) -> Attachment:
        url = self.url
        if url.startswith("//"):
            url = "https:" + url
        elif url and "://" not in url:
            url = "https://" + url
        return Attachment(
            content_type=self.content_type or "application/octet-stream",
            url=url,
            filename=self.filename,
            size=self.size,
            width=self.width,
            height=self.height,
            transcript=self.asr_refer_text or None,
        )


class Author(_Model):
    id: str = ""
    user_openid: str = ""
    member_openid: str = ""
    union_openid: str = ""
    username: str = ""
    bot: bool = False
    member_role: str = ""  # group messages, 2026 (§4.2)

    _coerce = field_validator("id", mode="before")(_str)


class GuildMember(_Model):
    roles: list[str] = Field(default_factory=list)
    nick: str = ""

    @field_validator("roles", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        return [str(item) for item in value if isinstance(item, str | int)] if isinstance(value, list) else []


class Mention(_Model):
    id: str = ""
    bot: bool = False
    is_you: bool = False

    _coerce = field_validator("id", mode="before")(_str)


M = TypeVar("M", bound=_Model)


class MessageScene(_Model):
    ext: list[Any] = Field(default_factory=list)

    def value(self, key: str) -> str | None:
        """`key=value` from `ext` (C2C and group: `msg_idx`, `ref_msg_idx`)."""
        for item in self.ext:
            if isinstance(item, str) and item.startswith(key + "="):
                return item[len(key) + 1 :] or None
        return None


class Reference(_Model):
    message_id: str = ""


class MessagePayload(_Model):
    """C2C, group and guild message `d` (§4.1-4.4): only what Herald reads."""

    id: str
    content: str = ""
    author: Author = Field(default_factory=Author)
    # Validated one by one (`valid_items`): one bad entry must not cost the whole message.
    attachments: list[Any] = Field(default_factory=list)
    mentions: list[Any] = Field(default_factory=list)
    group_openid: str = ""
    group_id: str = ""
    channel_id: str = ""
    guild_id: str = ""
    src_guild_id: str = ""
    member: GuildMember = Field(default_factory=GuildMember)  # guild messages (§4.4)
    message_scene: MessageScene = Field(default_factory=MessageScene)  # C2C and group
    message_reference: Reference = Field(default_factory=Reference)  # guild scenes

    _coerce = field_validator("id", "channel_id", "guild_id", "src_guild_id", mode="before")(_str)

    @field_validator("member", "message_scene", "message_reference", mode="before")
    @classmethod
    def _object(cls, value: Any) -> Any:
        # Malformed, each counts as absent: roles only widen what an author may do, and a
        # missing quote only leaves the quoted text out.
        return value if isinstance(value, dict) else {}

    @property
    def quoting(self) -> dict[str, Any]:
        """This message's quoting handle and the one it quotes, for `InboundMessage`."""
        return {
            "ref": self.message_scene.value("msg_idx"),
            "quotes": self.message_scene.value("ref_msg_idx") or self.message_reference.message_id or None,
        }

    @field_validator("attachments", "mentions", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        return value if isinstance(value, list) else []

    @property
    def where(self) -> str:
        return f"message {self.id}"

    def core_attachments(self, where: str) -> tuple[Attachment, ...]:
        items = valid_items(self.attachments, QQAttachment, "attachment", where)
        return tuple(a.to_core() for a in items if a.url)

    def valid_mentions(self, where: str) -> list[Mention]:
        return valid_items(self.mentions, Mention, "mention", where)


def valid_items(items: list[Any], model: type[M], what: str, where: str) -> list[M]:
    """The entries that fit `model`; each one that does not is dropped with a WARNING."""
    valid: list[M] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            kind = type(item).__name__
            log.warning("qq %s: %s #%d dropped: not an object (%s)", where, what, index + 1, kind)
            continue
        try:
            valid.append(model.model_validate(item))
        except ValidationError as exc:
            loc = ".".join(str(part) for part in exc.errors()[0]["loc"])
            log.warning("qq %s: %s #%d dropped: field %r does not fit", where, what, index + 1, loc)
    return valid


class RelationPayload(_Model):
    """FRIEND_*, C2C_MSG_*, GROUP_*_ROBOT, GROUP_MSG_* `d` (§4.5-4.6)."""

    timestamp: int | str | None = None
    openid: str = ""
    user_openid: str = ""
    group_openid: str = ""
    op_member_openid: str = ""


class Resolved(_Model):
    button_data: str | None = None
    button_id: str | None = None
    user_id: str | None = None
    message_id: str | None = None
    feature_id: str | None = None
    authorize_data: dict[str, Any] | None = None


class InteractionData(_Model):
    type: int | None = None
    resolved: Resolved = Field(default_factory=Resolved)


class InteractionPayload(_Model):
    """INTERACTION_CREATE `d` (§4.7)."""

    id: str
    type: int = 0
    scene: str = ""
    chat_type: int | None = None
    timestamp: str | int | None = None
    guild_id: str = ""
    channel_id: str = ""
    user_openid: str = ""
    group_openid: str = ""
    group_member_openid: str = ""
    data: InteractionData = Field(default_factory=InteractionData)

    _coerce = field_validator("id", "guild_id", "channel_id", mode="before")(_str)


class MemberPayload(_Model):
    """GROUP_MEMBER_ADD / GROUP_MEMBER_REMOVE `d` (2026, intent 1<<24)."""

    timestamp: int | str | None = None
    group_openid: str = ""
    member_openid: str = ""
    op_member_openid: str = ""


class _User(_Model):
    id: str = ""

    _coerce = field_validator("id", mode="before")(_str)


class _DeletedMessage(_Model):
    id: str = ""
    channel_id: str = ""
    guild_id: str = ""
    src_guild_id: str = ""
    timestamp: str | None = None
    author: _User = Field(default_factory=_User)

    _coerce = field_validator("id", "channel_id", "guild_id", "src_guild_id", mode="before")(_str)


class DeletePayload(_Model):
    """MESSAGE_DELETE / PUBLIC_MESSAGE_DELETE / DIRECT_MESSAGE_DELETE `d`: `{message, op_user}`."""

    message: _DeletedMessage
    op_user: _User = Field(default_factory=_User)


class _ReactionTarget(_Model):
    id: str = ""
    type: int | str = 0

    _coerce = field_validator("id", mode="before")(_str)


class _Emoji(_Model):
    id: str = ""
    type: int = 0

    _coerce = field_validator("id", mode="before")(_str)


class ReactionPayload(_Model):
    """MESSAGE_REACTION_ADD / MESSAGE_REACTION_REMOVE `d` (MessageReaction)."""

    user_id: str = ""
    guild_id: str = ""
    channel_id: str = ""
    target: _ReactionTarget = Field(default_factory=_ReactionTarget)
    emoji: _Emoji = Field(default_factory=_Emoji)

    _coerce = field_validator("user_id", "guild_id", "channel_id", mode="before")(_str)


_BOT_MENTION = re.compile(r"<@!?([^>\s]+)>")


def _strip_bot_mentions(content: str, mentions: list[Mention]) -> str:
    bot_ids = {m.id for m in mentions if m.bot and m.id}
    if not bot_ids:
        return content
    return _BOT_MENTION.sub(lambda m: "" if m.group(1) in bot_ids else m.group(0), content).strip()


def _c2c_message(d: dict[str, Any], envelope_id: str, received_at: datetime) -> InboundEvent | None:
    p = MessagePayload.model_validate(d)
    openid = p.author.user_openid or p.author.id
    if not openid:
        return None
    return InboundMessage(
        target=Target(Scene.C2C, openid),
        message_id=p.id,
        author_id=openid,
        content=p.content,
        received_at=received_at,
        attachments=p.core_attachments(p.where),
        **p.quoting,
    )


def _group_message(mentions_bot: bool) -> _Parser:
    def parse(d: dict[str, Any], envelope_id: str, received_at: datetime) -> InboundEvent | None:
        p = MessagePayload.model_validate(d)
        group = p.group_openid or p.group_id
        if not group:
            return None
        return InboundMessage(
            target=Target(Scene.GROUP, group),
            message_id=p.id,
            author_id=p.author.member_openid or p.author.id,
            content=p.content.strip() if mentions_bot else p.content,
            received_at=received_at,
            attachments=p.core_attachments(p.where),
            mentions_bot=mentions_bot,
            **p.quoting,
            author_roles=(p.author.member_role,) if p.author.member_role else (),
        )

    return parse


def _channel_message(mentions_bot: bool) -> _Parser:
    def parse(d: dict[str, Any], envelope_id: str, received_at: datetime) -> InboundEvent | None:
        p = MessagePayload.model_validate(d)
        if not p.channel_id:
            return None
        mentions = p.valid_mentions(p.where)
        mentioned = mentions_bot or any(m.bot for m in mentions)
        return InboundMessage(
            target=Target(Scene.CHANNEL, p.channel_id),
            message_id=p.id,
            author_id=p.author.id,
            content=_strip_bot_mentions(p.content, mentions),
            received_at=received_at,
            attachments=p.core_attachments(p.where),
            mentions_bot=mentioned,
            guild_id=p.guild_id or None,
            author_name=p.member.nick or p.author.username or None,
            ref=p.id,  # a guild message is quoted by its id
            quotes=p.quoting["quotes"],
            author_roles=tuple(p.member.roles),
        )

    return parse


def _direct_message(d: dict[str, Any], envelope_id: str, received_at: datetime) -> InboundEvent | None:
    p = MessagePayload.model_validate(d)
    if not p.guild_id:
        return None
    return InboundMessage(
        target=Target(Scene.DM, p.guild_id),  # the DM session's guild id is where replies go
        message_id=p.id,
        author_id=p.author.id,
        content=p.content,
        received_at=received_at,
        attachments=p.core_attachments(p.where),
        guild_id=p.src_guild_id or p.guild_id,
        author_name=p.member.nick or p.author.username or None,
        ref=p.id,
        quotes=p.quoting["quotes"],
    )


def _occurred(value: int | str | None, fallback: datetime) -> datetime:
    try:
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            return datetime.fromtimestamp(int(value), UTC)
        if isinstance(value, str) and value:
            parsed = datetime.fromisoformat(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    return fallback


def _relation(kind: RelationKind, scene: Scene, t: str) -> _Parser:
    def parse(d: dict[str, Any], envelope_id: str, received_at: datetime) -> InboundEvent | None:
        p = RelationPayload.model_validate(d)
        target_id = (p.openid or p.user_openid) if scene is Scene.C2C else p.group_openid
        if not target_id:
            return None
        return RelationEvent(
            kind=kind,
            target=Target(scene, target_id),
            occurred_at=_occurred(p.timestamp, received_at),
            event_id=envelope_id if t in EVENT_REPLYABLE and envelope_id else None,
            operator_id=p.op_member_openid or None,
        )

    return parse


def _interaction(d: dict[str, Any], envelope_id: str, received_at: datetime) -> InboundEvent | None:
    p = InteractionPayload.model_validate(d)
    resolved = p.data.resolved
    if p.scene == "group" or p.chat_type == 1:
        target = Target(Scene.GROUP, p.group_openid)
        user = p.group_member_openid or resolved.user_id
    elif p.scene == "c2c" or p.chat_type == 2:
        target = Target(Scene.C2C, p.user_openid)
        user = p.user_openid or resolved.user_id
    else:
        target = Target(Scene.CHANNEL, p.channel_id)
        user = resolved.user_id
    if not target.id:
        return None
    extra: dict[str, str] = {}
    if p.guild_id:
        extra["guild_id"] = p.guild_id
    if resolved.message_id:
        extra["message_id"] = resolved.message_id
    if resolved.feature_id:
        extra["feature_id"] = resolved.feature_id
    if resolved.authorize_data:
        for key in ("scope", "opt_scene"):
            value = resolved.authorize_data.get(key)
            if value is not None:
                extra[f"authorize_{key}"] = clean_text(str(value))
    return Interaction(
        target=target,
        interaction_id=p.id,
        occurred_at=_occurred(p.timestamp, received_at),
        user_id=user or None,
        button_id=resolved.button_id,
        button_data=resolved.button_data,
        kind=p.data.type if p.data.type is not None else p.type,
        event_id=envelope_id or None,
        extra=extra,
    )


def _member(change: MemberChange) -> _Parser:
    def parse(d: dict[str, Any], envelope_id: str, received_at: datetime) -> InboundEvent | None:
        p = MemberPayload.model_validate(d)
        if not p.group_openid or not p.member_openid:
            return None
        return MemberEvent(
            change=change,
            target=Target(Scene.GROUP, p.group_openid),
            member_id=p.member_openid,
            occurred_at=_occurred(p.timestamp, received_at),
            operator_id=p.op_member_openid or None,
        )

    return parse


def _deleted(scene: Scene) -> _Parser:
    def parse(d: dict[str, Any], envelope_id: str, received_at: datetime) -> InboundEvent | None:
        p = DeletePayload.model_validate(d)
        message = p.message
        # A guild DM is answered (and so known) by its DM session's guild id, a channel by its id.
        where = message.guild_id if scene is Scene.DM else message.channel_id
        if not where or not message.id:
            return None
        return MessageRecalled(
            target=Target(scene, where),
            message_id=message.id,
            occurred_at=received_at,
            author_id=message.author.id or None,
            operator_id=p.op_user.id or None,
            guild_id=(message.src_guild_id or message.guild_id) or None,
        )

    return parse


_REACTION_TARGETS = {"ReactionTargetType_MSG": 0, "ReactionTargetType_FEED": 1}


def _reaction(added: bool) -> _Parser:
    def parse(d: dict[str, Any], envelope_id: str, received_at: datetime) -> InboundEvent | None:
        p = ReactionPayload.model_validate(d)
        if not p.channel_id or not p.user_id or not p.target.id:
            return None
        kind = p.target.type
        if isinstance(kind, str):  # some payloads spell the type as a name
            kind = int(kind) if kind.isdigit() else _REACTION_TARGETS.get(kind, 0)
        return Reaction(
            target=Target(Scene.CHANNEL, p.channel_id),
            user_id=p.user_id,
            message_id=p.target.id,
            emoji_id=p.emoji.id,
            emoji_type=p.emoji.type,
            added=added,
            occurred_at=received_at,
            target_kind=kind,
            guild_id=p.guild_id or None,
            event_id=envelope_id or None,
        )

    return parse


_Parser = Callable[[dict[str, Any], str, datetime], InboundEvent | None]

PARSERS: dict[str, _Parser] = {
    "C2C_MESSAGE_CREATE": _c2c_message,
    "GROUP_AT_MESSAGE_CREATE": _group_message(mentions_bot=True),
    "GROUP_MESSAGE_CREATE": _group_message(mentions_bot=False),
    "AT_MESSAGE_CREATE": _channel_message(mentions_bot=True),
    "MESSAGE_CREATE": _channel_message(mentions_bot=False),
    "DIRECT_MESSAGE_CREATE": _direct_message,
    "FRIEND_ADD": _relation(RelationKind.FRIEND_ADDED, Scene.C2C, "FRIEND_ADD"),
    "FRIEND_DEL": _relation(RelationKind.FRIEND_REMOVED, Scene.C2C, "FRIEND_DEL"),
    "C2C_MSG_REJECT": _relation(RelationKind.PROACTIVE_REFUSED, Scene.C2C, "C2C_MSG_REJECT"),
    "C2C_MSG_RECEIVE": _relation(RelationKind.PROACTIVE_ALLOWED, Scene.C2C, "C2C_MSG_RECEIVE"),
    "GROUP_ADD_ROBOT": _relation(RelationKind.BOT_ADDED, Scene.GROUP, "GROUP_ADD_ROBOT"),
    "GROUP_DEL_ROBOT": _relation(RelationKind.BOT_REMOVED, Scene.GROUP, "GROUP_DEL_ROBOT"),
    "GROUP_MSG_REJECT": _relation(RelationKind.PROACTIVE_REFUSED, Scene.GROUP, "GROUP_MSG_REJECT"),
    "GROUP_MSG_RECEIVE": _relation(RelationKind.PROACTIVE_ALLOWED, Scene.GROUP, "GROUP_MSG_RECEIVE"),
    "INTERACTION_CREATE": _interaction,
    "GROUP_MEMBER_ADD": _member(MemberChange.JOINED),
    "GROUP_MEMBER_REMOVE": _member(MemberChange.LEFT),
    "MESSAGE_DELETE": _deleted(Scene.CHANNEL),
    "PUBLIC_MESSAGE_DELETE": _deleted(Scene.CHANNEL),
    "DIRECT_MESSAGE_DELETE": _deleted(Scene.DM),
    "MESSAGE_REACTION_ADD": _reaction(added=True),
    "MESSAGE_REACTION_REMOVE": _reaction(added=False),
}


def parse_dispatch(t: str, d: Any, envelope_id: str, received_at: datetime) -> InboundEvent | None:
    """The core event for one dispatch, or None for types Herald does not handle."""
    parser = PARSERS.get(t)
    if parser is None:
        log.debug("qq dispatch %s ignored (not handled)", t)
        return None
    if not isinstance(d, dict):
        log.debug("qq dispatch %s ignored: d is not an object", t)
        return None
    envelope_id = clean_text(envelope_id)
    try:
        event = parser(d, envelope_id, received_at)
    except ValidationError as exc:
        log.warning(
            "qq dispatch %s %s rejected: payload does not fit (%s)", t, envelope_id, exc.errors()[0]["loc"]
        )
        return None
    if event is None:
        log.warning("qq dispatch %s %s rejected: it names no target (no openid / channel)", t, envelope_id)
        return None
    too_long = _too_long(event)
    if too_long is not None:
        name, length = too_long
        log.warning(
            "qq dispatch %s %s rejected: its %s is %d characters, over the %d Herald can store; "
            "it is neither recorded nor answered",
            t,
            envelope_id[:80] + ("…" if len(envelope_id) > 80 else ""),
            name,
            length,
            MAX_ID_CHARS,
        )
        return None
    return event


def _too_long(event: InboundEvent) -> tuple[str, int] | None:
    """The first id of `event` that is longer than the store keeps, with its length."""
    ids: list[tuple[str, str | None]] = [("target", event.target.key)]
    if isinstance(event, InboundMessage):
        ids += [("message id", event.message_id), ("author id", event.author_id)]
    elif isinstance(event, Interaction):
        ids += [("interaction id", event.interaction_id), ("envelope id", event.event_id)]
    elif isinstance(event, RelationEvent | Reaction):
        ids += [("envelope id", event.event_id)]
    for name, value in ids:
        if value is not None and len(value) > MAX_ID_CHARS:
            return name, len(value)
    return None
