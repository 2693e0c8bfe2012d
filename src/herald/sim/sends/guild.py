"""Guild sends: channel and DM messages (with the audit hold), DM sessions, reading a channel
message."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from typing import Any

from starlette.requests import Request

from herald.sim import events, rules
from herald.sim.errors import SimError
from herald.sim.sends.common import Reply, SendLog
from herald.sim.state import Outbound, Scene, SimState


class GuildSends:
    """The `/channels/...`, `/dms/...` and `/users/@me/dms` endpoints."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self.log = SendLog(state)

    async def channel(self, request: Request, body: dict[str, Any]) -> Reply:
        return self._send_guild("channel", request.path_params["channel_id"], body)

    async def dm(self, request: Request, body: dict[str, Any]) -> Reply:
        return self._send_guild("dm", request.path_params["guild_id"], body)

    def _send_guild(self, scene: Scene, target: str, body: dict[str, Any]) -> Reply:
        state = self.state
        entry = self.log.entry(body)
        try:
            plan = rules.plan_guild(state, scene, target, body)
            out = state.add_outbound(scene, target, entry["content"])
            message = self._guild_message(scene, target, out)
            state.anchors.guild_messages[out.id] = message
            rules.commit(plan)
            if state.settings.audit != "off":
                raise self._hold_for_audit(scene, target, plan, message)
        except SimError as error:
            self.log.failed(scene, target, entry, error)
            raise
        self.log.sent(scene, target, entry, plan.kind, out.id)
        return 200, message

    def _guild_message(self, scene: Scene, target: str, out: Outbound) -> dict[str, Any]:
        state = self.state
        state.channel_seq += 1
        s = state.settings
        if scene == "channel":
            guild_id, channel_id = state.channel_guild.get(target, ""), target
        else:
            guild_id = target
            channel_id = state.dm_sessions.get(target, {}).get("channel_id", "")
        message: dict[str, Any] = {
            "id": out.id,
            "channel_id": channel_id,
            "guild_id": guild_id,
            "content": out.content or "",
            "timestamp": state.clock.rfc3339(out.sent_at),
            "edited_timestamp": "",
            "mention_everyone": False,
            "author": {"id": s.bot_id, "username": s.bot_name, "avatar": "", "bot": True},
            "attachments": [],
            "embeds": [],
            "mentions": [],
            "seq": state.channel_seq,
            "seq_in_channel": str(state.channel_seq),
        }
        if scene == "dm":
            message["direct_message"] = True
            message["src_guild_id"] = guild_id
        return message

    def _hold_for_audit(
        self, scene: Scene, target: str, plan: rules.Plan, message: dict[str, Any]
    ) -> SimError:
        """Rule 78: answer 202 with the audit body, then publish the verdict after `audit_delay_s`."""
        state = self.state
        audit_id = secrets.token_hex(12)
        verdict = state.settings.audit
        d: dict[str, Any] = {
            "audit_id": audit_id,
            "guild_id": message["guild_id"],
            "channel_id": message["channel_id"],
            "audit_time": state.clock.rfc3339(),
            "create_time": message["timestamp"],
            "seq_in_channel": message["seq_in_channel"],
        }
        if verdict == "pass":
            d["message_id"] = message["id"]
        t = "MESSAGE_AUDIT_PASS" if verdict == "pass" else "MESSAGE_AUDIT_REJECT"
        asyncio.get_running_loop().call_later(
            state.settings.audit_delay_s, lambda: events.publish(state, t, d)
        )
        code = 304023 if plan.kind == "proactive" else 304024
        return SimError(code, status=202, data={"message_audit": {"audit_id": audit_id}})

    async def create_dm(self, request: Request, body: dict[str, Any]) -> Reply:
        recipient = body.get("recipient_id")
        source = body.get("source_guild_id")
        if not recipient or not source:
            raise SimError(12002, "recipient_id和source_guild_id必填")
        guild_id = "dm" + hashlib.sha1(f"{recipient}/{source}".encode()).hexdigest()[:16]
        session = self.state.dm_sessions.setdefault(
            guild_id, {"recipient_id": str(recipient), "channel_id": f"dmc-{guild_id}"}
        )
        session["source_guild_id"] = str(source)
        return 200, {
            "guild_id": guild_id,
            "channel_id": session["channel_id"],
            "create_time": str(int(self.state.clock.time())),
        }

    async def channel_get(self, request: Request, body: dict[str, Any]) -> Reply:
        message = self.state.anchors.guild_messages.get(request.path_params["message_id"])
        if message is None or message["channel_id"] != request.path_params["channel_id"]:
            raise SimError(306004)
        return 200, {"message": message}
