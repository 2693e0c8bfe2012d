"""Inbound traffic, as the platform would push it: a user's C2C message, a group message, a
guild channel message or DM, or any event. Each is published on the bus (the wires deliver it)
and leaves what a later send may anchor on and the transcript entry (docs/sim.md names each
payload field's source). Built on the stores (`SimState`); the control API and tests use it.
"""

from __future__ import annotations

from typing import Any

from herald.sim import events
from herald.sim.bus import Dispatch
from herald.sim.state import Injected, SimState
from herald.sim.stores.anchors import Anchor, Scene


def _quoting(anchor: Anchor, quote: str | None) -> dict[str, Any]:
    """`message_type` and `message_scene` of a C2C or group message: its own quoting handle and,
    when it quotes one, `ref_msg_idx` with type 103, the quote type (docs/sim.md names the
    sources)."""
    ext = [f"msg_idx={anchor.ref_idx}"]
    if quote:
        ext.append(f"ref_msg_idx={quote}")
    return {"message_type": 103 if quote else 0, "message_scene": {"source": "default", "ext": ext}}


class Injector:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def _anchor(self, scene: Scene, target: str, author: str) -> Anchor:
        return self.state.anchors.add_message(scene, target, author, self.state.clock.time())

    def _inbound(
        self, t: str, scene: Scene, target: str, anchor: Anchor, d: dict[str, Any], content: str
    ) -> Injected:
        dispatch = self.state.bus.publish(t, d, at=anchor.received_at)
        # A message event's envelope id is a known event, just not a replyable one (rule 39).
        self.state.anchors.add_event(dispatch.id, t, scene, target, anchor.received_at)
        self.state.record(
            scene,
            target,
            {
                "direction": "in",
                "t": t,
                "at": anchor.received_at,
                "msg_id": anchor.msg_id,
                "event_id": dispatch.id,
                "author": anchor.author,
                "content": content,
            },
        )
        return Injected(msg_id=anchor.msg_id, event_id=dispatch.id, dispatch=dispatch, ref_idx=anchor.ref_idx)

    def c2c(
        self,
        user_openid: str,
        content: str,
        attachments: list[dict[str, Any]] | None = None,
        quote: str | None = None,
    ) -> Injected:
        """A user's private message to the bot: C2C_MESSAGE_CREATE (docs/sim.md)."""
        anchor = self._anchor("c2c", user_openid, user_openid)
        self.state.last_inbound_c2c[user_openid] = anchor.received_at
        self.state.wakeups_used.pop(user_openid, None)
        d: dict[str, Any] = {
            "id": anchor.msg_id,
            "author": {
                "id": user_openid,
                "user_openid": user_openid,
                "union_openid": "U_" + user_openid,
                "username": "",
                "bot": False,
            },
            "content": content,
            "timestamp": self.state.clock.rfc3339(anchor.received_at),
            **_quoting(anchor, quote),
            "attachments": attachments or [],
        }
        return self._inbound("C2C_MESSAGE_CREATE", "c2c", user_openid, anchor, d, content)

    def group(
        self,
        group_openid: str,
        member_openid: str,
        content: str,
        *,
        at_bot: bool = True,
        attachments: list[dict[str, Any]] | None = None,
        quote: str | None = None,
        member_role: str | None = "member",
        username: str | None = None,
    ) -> Injected:
        """A group message: GROUP_AT_MESSAGE_CREATE (content starts with a space) or GROUP_MESSAGE_CREATE.

        `member_role` (owner / admin / member) goes in `author.member_role`, as in 2026 payloads
        (docs/sim.md names the sources); None leaves it out, as in payloads before 2026."""
        anchor = self._anchor("group", group_openid, member_openid)
        if at_bot and not content.startswith(" "):
            content = " " + content
        d: dict[str, Any] = {
            "id": anchor.msg_id,
            "group_openid": group_openid,
            "group_id": group_openid,
            "author": {
                "id": member_openid,
                "member_openid": member_openid,
                "union_openid": "U_" + member_openid,
                "username": username if username is not None else f"member-{member_openid[:8]}",
                "bot": False,
            },
            "content": content,
            "timestamp": self.state.clock.rfc3339(anchor.received_at),
            **_quoting(anchor, quote),
            "attachments": attachments or [],
        }
        if member_role is not None:
            d["author"]["member_role"] = member_role
        if at_bot:
            # The bot's own entry, as SDKs model it (`is_you`; NoneBot requires every field here).
            d["mentions"] = [
                {
                    "scope": "single",
                    "id": self.state.settings.bot_id,
                    "member_openid": self.state.settings.bot_id,
                    "username": self.state.settings.bot_name,
                    "is_you": True,
                    "bot": True,
                },
            ]
        t = "GROUP_AT_MESSAGE_CREATE" if at_bot else "GROUP_MESSAGE_CREATE"
        return self._inbound(t, "group", group_openid, anchor, d, content)

    def _guild_message(
        self, anchor: Anchor, guild_id: str, channel_id: str, author_id: str, content: str
    ) -> dict[str, Any]:
        self.state.channel_seq += 1
        message: dict[str, Any] = {
            "id": anchor.msg_id,
            "channel_id": channel_id,
            "guild_id": guild_id,
            "content": content,
            "timestamp": self.state.clock.rfc3339(anchor.received_at),
            "author": {"id": author_id, "username": f"user-{author_id}", "avatar": "", "bot": False},
            "member": {"joined_at": self.state.clock.rfc3339(anchor.received_at), "roles": ["1"]},
            "seq": self.state.channel_seq,
            "seq_in_channel": str(self.state.channel_seq),
            "attachments": [],
            "mentions": [],
        }
        self.state.anchors.guild_messages[anchor.msg_id] = message
        return message

    def channel(
        self, channel_id: str, guild_id: str, author_id: str, content: str, *, at_bot: bool = True
    ) -> Injected:
        """A guild channel message: AT_MESSAGE_CREATE (with `<@!bot>`), or MESSAGE_CREATE if not at_bot."""
        anchor = self._anchor("channel", channel_id, author_id)
        self.state.channel_guild[channel_id] = guild_id
        if at_bot and "<@!" not in content:
            content = f"<@!{self.state.settings.bot_id}> {content}"
        d = self._guild_message(anchor, guild_id, channel_id, author_id, content)
        if at_bot:
            d["mentions"] = [
                {"id": self.state.settings.bot_id, "username": self.state.settings.bot_name, "bot": True}
            ]
        t = "AT_MESSAGE_CREATE" if at_bot else "MESSAGE_CREATE"
        return self._inbound(t, "channel", channel_id, anchor, d, content)

    def dm(self, guild_id: str, author_id: str, content: str) -> Injected:
        """A guild direct message: DIRECT_MESSAGE_CREATE; `guild_id` is the DM session's guild id."""
        anchor = self._anchor("dm", guild_id, author_id)
        session = self.state.dm_sessions.setdefault(
            guild_id, {"recipient_id": author_id, "channel_id": f"dmc-{guild_id}"}
        )
        d = self._guild_message(anchor, guild_id, session["channel_id"], author_id, content)
        d["src_guild_id"] = guild_id
        d["direct_message"] = True
        return self._inbound("DIRECT_MESSAGE_CREATE", "dm", guild_id, anchor, d, content)

    def event(self, t: str, d: Any) -> Dispatch:
        """Any event. Relation events update proactive permission; replyable ones become event anchors."""
        return events.publish(self.state, t, d)
