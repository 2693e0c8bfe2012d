"""Answering an interaction (a button click) once, with a code (rule 77)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from herald.sim.errors import SimError
from herald.sim.sends.common import Reply
from herald.sim.state import SimState


class Interactions:
    """`PUT /interactions/{interaction_id}`."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    async def answer(self, request: Request, body: dict[str, Any]) -> Reply:
        """Rule 77: answer a known interaction once with a code in 0..5 -> 204."""
        interaction_id = request.path_params["interaction_id"]
        code = body.get("code")
        if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 5:
            raise SimError(12002, f"code必须是0到5之间的整数，收到{code!r}")
        if interaction_id not in self.state.interactions:
            raise SimError(630001)
        if self.state.interactions[interaction_id] is not None:
            raise SimError(630002)
        self.state.interactions[interaction_id] = str(code)
        click = self.state.clicks.get(interaction_id)
        if click is not None:
            click["code"] = code
            self.state.record(
                click["scene"],
                click["target"],
                {
                    "direction": "out",
                    "at": self.state.clock.time(),
                    "ack": interaction_id,
                    "code": code,
                    "status": 204,
                },
            )
        return 204, None
