"""OneBot v11 events as core events. What has no core meaning (heartbeats, the lifecycle of the
connection) is logged and not handed on."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from herald.core.events import (
    ContactRequest,
    InboundEvent,
    InboundMessage,
    MemberChange,
    MemberEvent,
    MessageRecalled,
    RelationEvent,
    RelationKind,
    RequestKind,
)
from herald.core.target import Scene, Target
from herald.onebot.message import read, segments_of

log = logging.getLogger(__name__)


def _when(payload: dict[str, Any], now: datetime) -> datetime:
    stamp = payload.get("time")
    return datetime.fromtimestamp(stamp, UTC) if isinstance(stamp, int | float) else now


def _message(payload: dict[str, Any], platform: str, self_id: str, now: datetime) -> InboundMessage | None:
    kind = payload.get("message_type")
    user = str(payload.get("user_id", ""))
    if kind == "private":
        target = Target(Scene.C2C, user, platform)
    elif kind == "group":
        target = Target(Scene.GROUP, str(payload.get("group_id", "")), platform)
    else:
        log.info("OneBot message of type %r ignored (Herald reads private and group messages)", kind)
        return None
    if not user or not target.id or payload.get("message_id") is None:
        log.warning("OneBot message without user_id, group_id or message_id ignored: %.200s", payload)
        return None
    try:
        segments = segments_of(payload.get("message", ""))
    except ValueError as exc:
        log.warning("OneBot message %s ignored: %s", payload.get("message_id"), exc)
        return None
    reading = read(segments, self_id)
    sender = payload.get("sender") if isinstance(payload.get("sender"), dict) else {}
    assert isinstance(sender, dict)
    name = sender.get("card") or sender.get("nickname")
    role = sender.get("role")
    message_id = str(payload["message_id"])
    return InboundMessage(
        target=target,
        message_id=message_id,
        author_id=user,
        content=reading.content,
        received_at=_when(payload, now),
        attachments=reading.attachments,
        # In a group, only a message that @s the account is for the bot (as on QQ's platform).
        mentions_bot=kind == "private" or reading.mentions_self,
        author_name=str(name) if name else None,
        ref=message_id,
        quotes=reading.quotes,
        author_roles=(str(role),) if role else (),
    )


def _notice(payload: dict[str, Any], platform: str, self_id: str, now: datetime) -> InboundEvent | None:
    notice = payload.get("notice_type")
    at = _when(payload, now)
    user = str(payload.get("user_id", ""))
    group = str(payload.get("group_id", ""))
    operator = str(payload["operator_id"]) if payload.get("operator_id") is not None else None
    if notice == "friend_add":
        return RelationEvent(RelationKind.FRIEND_ADDED, Target(Scene.C2C, user, platform), at)
    if notice in ("group_increase", "group_decrease"):
        target = Target(Scene.GROUP, group, platform)
        joined = notice == "group_increase"
        if user == self_id:
            kind = RelationKind.BOT_ADDED if joined else RelationKind.BOT_REMOVED
            return RelationEvent(kind, target, at, operator_id=operator)
        change = MemberChange.JOINED if joined else MemberChange.LEFT
        return MemberEvent(change, target, user, at, operator_id=operator)
    if notice in ("group_recall", "friend_recall"):
        target = (
            Target(Scene.GROUP, group, platform)
            if notice == "group_recall"
            else Target(Scene.C2C, user, platform)
        )
        return MessageRecalled(
            target, str(payload.get("message_id", "")), at, author_id=user, operator_id=operator
        )
    log.info("OneBot notice %r not handed on (no core event for it)", notice)
    return None


def _request(payload: dict[str, Any], platform: str, now: datetime) -> ContactRequest | None:
    kind = payload.get("request_type")
    user = str(payload.get("user_id", ""))
    flag = payload.get("flag")
    if not user or flag is None:
        log.warning("OneBot request without user_id or flag ignored: %.200s", payload)
        return None
    if kind == "friend":
        request, target = RequestKind.FRIEND, Target(Scene.C2C, user, platform)
    elif kind == "group" and payload.get("sub_type") in ("add", "invite"):
        request = RequestKind.GROUP_INVITE if payload["sub_type"] == "invite" else RequestKind.GROUP_JOIN
        target = Target(Scene.GROUP, str(payload.get("group_id", "")), platform)
    else:
        log.info("OneBot request %r/%r not handed on", kind, payload.get("sub_type"))
        return None
    comment = payload.get("comment")
    return ContactRequest(request, target, user, str(comment or ""), _when(payload, now), str(flag))


def to_core(payload: dict[str, Any], platform: str, self_id: str, now: datetime) -> InboundEvent | None:
    """The core event for one OneBot event, or None for what Herald does not act on."""
    post = payload.get("post_type")
    if post == "message":
        return _message(payload, platform, self_id, now)
    if post == "notice":
        return _notice(payload, platform, self_id, now)
    if post == "request":
        return _request(payload, platform, now)
    if post != "meta_event":
        log.warning("OneBot event of unknown post_type %r ignored: %.200s", post, payload)
    return None
