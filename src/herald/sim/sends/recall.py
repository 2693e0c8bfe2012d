"""Recalling a message (rule 76): the bot's own within the window, a member's group message as
admin; guild messages by scene."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from herald.sim.errors import SimError
from herald.sim.sends.common import Reply
from herald.sim.state import Scene, SimState


class Recalls:
    """The `DELETE .../messages/{message_id}` endpoints."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    async def c2c(self, request: Request, body: dict[str, Any]) -> Reply:
        return self._recall_v2("c2c", request.path_params["openid"], request.path_params["message_id"])

    async def group(self, request: Request, body: dict[str, Any]) -> Reply:
        return self._recall_v2(
            "group", request.path_params["group_openid"], request.path_params["message_id"]
        )

    def _recall_v2(self, scene: Scene, target: str, message_id: str) -> Reply:
        """Rule 76: the bot's own message within 120 s; a member's group message only as admin."""
        state = self.state
        out = state.anchors.outbound.get(message_id)
        if out is not None and out.scene == scene and out.target == target:
            sent_at = out.sent_at
        else:
            anchor = state.anchors.messages.get(message_id)
            if scene != "group" or anchor is None or anchor.scene != scene or anchor.target != target:
                raise SimError(40061002)
            if not state.settings.bot_is_group_admin:
                raise SimError(40062003)
            sent_at = anchor.received_at
        if state.clock.time() - sent_at > state.settings.recall_window_s:
            raise SimError(40064004)
        state.record(
            scene, target, {"direction": "out", "at": state.clock.time(), "recall": message_id, "status": 200}
        )
        return 200, None

    async def channel(self, request: Request, body: dict[str, Any]) -> Reply:
        return self._recall_guild(
            "channel", request.path_params["channel_id"], request.path_params["message_id"]
        )

    async def dm(self, request: Request, body: dict[str, Any]) -> Reply:
        return self._recall_guild("dm", request.path_params["guild_id"], request.path_params["message_id"])

    def _recall_guild(self, scene: Scene, target: str, message_id: str) -> Reply:
        state = self.state
        known = state.anchors.outbound.get(message_id) or state.anchors.messages.get(message_id)
        if known is None or known.scene != scene or known.target != target:
            raise SimError(306004)
        state.record(
            scene, target, {"direction": "out", "at": state.clock.time(), "recall": message_id, "status": 200}
        )
        return 200, None
