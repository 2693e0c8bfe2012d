"""Arbitrary events injected through the control API, and what they change in the emulator.

Relation events switch proactive permission (C2C_MSG_REJECT/RECEIVE, GROUP_MSG_REJECT/RECEIVE:
rule 41). Every event is remembered as a potential `event_id` anchor; whether its type may be
replied to is decided at send time (rule 39), so a non-replyable one answers 40034027, not 40034025.
"""

from __future__ import annotations

from typing import Any

from herald.sim.bus import Dispatch
from herald.sim.state import Anchor, EventAnchor, Scene, SimState, new_ref_idx

PERMISSION_EVENTS: dict[str, tuple[Scene, str, bool]] = {
    "C2C_MSG_REJECT": ("c2c", "openid", False),
    "C2C_MSG_RECEIVE": ("c2c", "openid", True),
    "FRIEND_ADD": ("c2c", "openid", True),
    "GROUP_MSG_REJECT": ("group", "group_openid", False),
    "GROUP_MSG_RECEIVE": ("group", "group_openid", True),
    "GROUP_ADD_ROBOT": ("group", "group_openid", True),
}

GUILD_EVENTS = frozenset(
    {
        "GUILD_MEMBER_ADD",
        "GUILD_MEMBER_UPDATE",
        "GUILD_MEMBER_REMOVE",
        "MESSAGE_REACTION_ADD",
        "MESSAGE_REACTION_REMOVE",
        "FORUM_THREAD_CREATE",
        "FORUM_THREAD_UPDATE",
        "FORUM_THREAD_DELETE",
        "FORUM_POST_CREATE",
        "FORUM_POST_DELETE",
        "FORUM_REPLY_CREATE",
        "FORUM_REPLY_DELETE",
    }
)


def scene_and_target(t: str, d: Any) -> tuple[Scene | None, str]:
    """Which conversation an event belongs to, from its payload (§4.5-4.7)."""
    if not isinstance(d, dict):
        return None, ""
    if t in DELETE_EVENTS and isinstance(d.get("message"), dict):
        d = d["message"]  # `{message, op_user}`: the deleted message says where it was
    if t == "INTERACTION_CREATE":
        scene = d.get("scene")
        chat_type = d.get("chat_type")
        if scene == "group" or chat_type == 1:
            return "group", str(d.get("group_openid", ""))
        if scene == "c2c" or chat_type == 2:
            return "c2c", str(d.get("user_openid", ""))
        return "channel", str(d.get("channel_id", ""))
    if t.startswith(("C2C_", "FRIEND_")):
        return "c2c", str(d.get("openid", d.get("user_openid", "")))
    if t.startswith("GROUP_"):
        return "group", str(d.get("group_openid", ""))
    if t.startswith("DIRECT_MESSAGE"):
        return "dm", str(d.get("guild_id", ""))
    if "channel_id" in d:
        return "channel", str(d["channel_id"])
    if "guild_id" in d:
        return "channel", ""  # guild-wide event: replyable in any channel of the guild
    return None, ""


MESSAGE_EVENTS = frozenset(
    {
        "C2C_MESSAGE_CREATE",
        "GROUP_AT_MESSAGE_CREATE",
        "GROUP_MESSAGE_CREATE",
        "AT_MESSAGE_CREATE",
        "MESSAGE_CREATE",
        "DIRECT_MESSAGE_CREATE",
    }
)


DELETE_EVENTS = frozenset({"MESSAGE_DELETE", "PUBLIC_MESSAGE_DELETE", "DIRECT_MESSAGE_DELETE"})

# Events `POST /_sim/events` can build from a few fields: type -> the fields it needs.
SHAPED_EVENTS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("FRIEND_ADD", "FRIEND_DEL", "C2C_MSG_REJECT", "C2C_MSG_RECEIVE"), ("openid",)),
    **dict.fromkeys(
        ("GROUP_ADD_ROBOT", "GROUP_DEL_ROBOT", "GROUP_MSG_REJECT", "GROUP_MSG_RECEIVE"),
        ("group_openid", "op_member_openid"),
    ),
    **dict.fromkeys(("GROUP_MEMBER_ADD", "GROUP_MEMBER_REMOVE"), ("group_openid", "member_openid")),
    **dict.fromkeys(("MESSAGE_DELETE", "PUBLIC_MESSAGE_DELETE", "DIRECT_MESSAGE_DELETE"), ("message_id",)),
    **dict.fromkeys(
        ("MESSAGE_REACTION_ADD", "MESSAGE_REACTION_REMOVE"),
        ("user_id", "guild_id", "channel_id", "message_id"),
    ),
}


class ShapeError(ValueError):
    """The fields do not make the event: the message names what is missing."""


def shape(state: SimState, t: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The payload the platform sends for `t`, built from `fields` (docs/sim.md, "Event payloads").

    Fields the event needs and that the emulator cannot know must be given; anything else in
    `fields` that is not one of the shape's own inputs is added to `d` as is."""
    needed = SHAPED_EVENTS.get(t)
    if needed is None:
        raise ShapeError(f"the emulator cannot build {t!r}; give the whole payload as 'd' instead")
    missing = [name for name in needed if not isinstance(fields.get(name), str) or not fields[name]]
    if t in DELETE_EVENTS and "message_id" in missing and isinstance(fields.get("message"), dict):
        missing.remove("message_id")
    if missing:
        raise ShapeError(f"{t} needs the string field(s) {', '.join(missing)} in 'fields'")
    now = state.clock.time()
    extra = {k: v for k, v in fields.items() if k not in needed}
    if t in DELETE_EVENTS:
        return _deleted(state, t, fields, extra)
    if t.startswith("MESSAGE_REACTION"):
        emoji = {"id": str(extra.pop("emoji_id", "4")), "type": int(extra.pop("emoji_type", 1))}
        return {
            "user_id": fields["user_id"],
            "guild_id": fields["guild_id"],
            "channel_id": fields["channel_id"],
            "target": {"id": fields["message_id"], "type": int(extra.pop("target_type", 0))},
            "emoji": emoji,
            **extra,
        }
    # Relation and member events carry the time as integer seconds (§4.5, §4.6).
    return {"timestamp": int(now), **{name: fields[name] for name in needed}, **extra}


def _deleted(state: SimState, t: str, fields: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`{message, op_user}`: the deleted message as the emulator knows it (it was injected or sent
    in a channel or DM), else as `fields` describe it."""
    extra.pop("message", None)
    op_user = str(extra.pop("op_user_id", "") or "")
    message_id = str(fields.get("message_id", ""))
    known = state.anchors.guild_messages.get(message_id)
    message: dict[str, Any] = dict(fields["message"]) if isinstance(fields.get("message"), dict) else {}
    if known is not None:
        message = {
            "id": known["id"],
            "channel_id": known["channel_id"],
            "guild_id": known["guild_id"],
            "author": {
                "id": known["author"]["id"],
                "username": known["author"].get("username", ""),
                "bot": known["author"].get("bot", False),
            },
            **(
                {"src_guild_id": known["src_guild_id"], "direct_message": True}
                if known.get("direct_message")
                else {}
            ),
            **message,
        }
    else:
        message.setdefault("id", message_id)
    if not message.get("channel_id") and not message.get("guild_id"):
        raise ShapeError(
            f"{t}: message {message_id!r} is unknown to the emulator; give 'message' with its "
            "channel_id and guild_id (and author)"
        )
    author = message.get("author")
    return {
        "message": message,
        "op_user": {"id": op_user or (author.get("id", "") if isinstance(author, dict) else "")},
        **extra,
    }


def _message_anchor(state: SimState, t: str, d: dict[str, Any], now: float) -> None:
    """A hand-written user message event is as good an anchor as an injected one."""
    raw_author = d.get("author")
    author: dict[str, Any] = raw_author if isinstance(raw_author, dict) else {}
    if t == "C2C_MESSAGE_CREATE":
        scene: Scene = "c2c"
        target = str(author.get("user_openid") or author.get("id") or "")
        state.last_inbound_c2c[target] = now
        state.wakeups_used.pop(target, None)
    elif t.startswith("GROUP_"):
        scene, target = "group", str(d.get("group_openid", ""))
    elif t == "DIRECT_MESSAGE_CREATE":
        scene, target = "dm", str(d.get("guild_id", ""))
    else:
        scene, target = "channel", str(d.get("channel_id", ""))
        if d.get("guild_id"):
            state.channel_guild[target] = str(d["guild_id"])
    state.anchors.messages[str(d["id"])] = Anchor(
        msg_id=str(d["id"]),
        scene=scene,
        target=target,
        author=str(author.get("id", "")),
        received_at=now,
        ref_idx=new_ref_idx(),
    )


def publish(state: SimState, t: str, d: Any) -> Dispatch:
    now = state.clock.time()
    dispatch = state.bus.publish(t, d, at=now)
    if t in MESSAGE_EVENTS and isinstance(d, dict) and d.get("id"):
        _message_anchor(state, t, d, now)
    scene, target = scene_and_target(t, d)
    state.anchors.events[dispatch.id] = EventAnchor(
        event_id=dispatch.id, t=t, scene=scene, target=target, received_at=now
    )
    permission = PERMISSION_EVENTS.get(t)
    if permission is not None and isinstance(d, dict):
        p_scene, key, allowed = permission
        p_target = str(d.get(key, ""))
        if p_target:
            state.proactive_allowed[(p_scene, p_target)] = allowed
    if t == "INTERACTION_CREATE" and isinstance(d, dict) and "id" in d:
        state.interactions[str(d["id"])] = None
        _apply_authorization(state, d)
    if scene is not None and target:
        state.record(scene, target, {"direction": "in", "t": t, "at": now, "event_id": dispatch.id, "d": d})
    return dispatch


def _apply_authorization(state: SimState, d: dict[str, Any]) -> None:
    """2026 authorization interactions (type 18/19 with scope c2c_push/group_push) grant permission."""
    data = d.get("data")
    resolved = data.get("resolved") if isinstance(data, dict) else None
    authorize = resolved.get("authorize_data") if isinstance(resolved, dict) else None
    if not isinstance(authorize, dict):
        return
    scope = authorize.get("scope")
    if scope == "c2c_push" and d.get("user_openid"):
        state.proactive_allowed[("c2c", str(d["user_openid"]))] = True
    elif scope == "group_push" and d.get("group_openid"):
        state.proactive_allowed[("group", str(d["group_openid"]))] = True
