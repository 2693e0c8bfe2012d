"""The emulator's event bus: one place where an event becomes a dispatch for every wire.

Whoever creates an event (the control API injecting a user message, a relation event, an
audit result) calls `EventBus.publish`. Each wire endpoint (the WebSocket gateway hub, the
webhook pusher) registers itself with `attach` and gets every dispatch; it filters by intent
and numbers frames per session itself. Faults aimed at the wire (close with a code, op 7,
redeliver) go through the bus too, so the control API never imports the wires.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Protocol

# Event type -> the intent bit that must be subscribed for it to be delivered (docs/sim.md).
INTENT_OF_EVENT: dict[str, int] = {
    **dict.fromkeys(
        [
            "GUILD_CREATE",
            "GUILD_UPDATE",
            "GUILD_DELETE",
            "CHANNEL_CREATE",
            "CHANNEL_UPDATE",
            "CHANNEL_DELETE",
        ],
        1 << 0,
    ),
    **dict.fromkeys(["GUILD_MEMBER_ADD", "GUILD_MEMBER_UPDATE", "GUILD_MEMBER_REMOVE"], 1 << 1),
    **dict.fromkeys(["MESSAGE_CREATE", "MESSAGE_DELETE"], 1 << 9),
    **dict.fromkeys(["MESSAGE_REACTION_ADD", "MESSAGE_REACTION_REMOVE"], 1 << 10),
    **dict.fromkeys(["DIRECT_MESSAGE_CREATE", "DIRECT_MESSAGE_DELETE"], 1 << 12),
    **dict.fromkeys(["GROUP_MEMBER_ADD", "GROUP_MEMBER_REMOVE", "GROUP_JOIN_REQUEST"], 1 << 24),
    **dict.fromkeys(
        [
            "C2C_MESSAGE_CREATE",
            "GROUP_AT_MESSAGE_CREATE",
            "GROUP_MESSAGE_CREATE",
            "FRIEND_ADD",
            "FRIEND_DEL",
            "C2C_MSG_REJECT",
            "C2C_MSG_RECEIVE",
            "GROUP_ADD_ROBOT",
            "GROUP_DEL_ROBOT",
            "GROUP_MSG_REJECT",
            "GROUP_MSG_RECEIVE",
        ],
        1 << 25,
    ),
    "INTERACTION_CREATE": 1 << 26,
    **dict.fromkeys(["MESSAGE_AUDIT_PASS", "MESSAGE_AUDIT_REJECT"], 1 << 27),
    **dict.fromkeys(["AUDIO_START", "AUDIO_FINISH", "AUDIO_ON_MIC", "AUDIO_OFF_MIC"], 1 << 29),
    **dict.fromkeys(["AT_MESSAGE_CREATE", "PUBLIC_MESSAGE_DELETE"], 1 << 30),
}

# Events with no documented intent (forum events and anything new) ride on this bit.
DEFAULT_INTENT = 1 << 28


def intent_of(event_type: str) -> int:
    return INTENT_OF_EVENT.get(event_type, DEFAULT_INTENT)


def new_envelope_id(event_type: str) -> str:
    """Top-level dispatch id, `"<TYPE>:<opaque>"`; it is the `event_id` of event replies."""
    return f"{event_type}:{secrets.token_hex(12)}"


@dataclass(frozen=True, slots=True)
class Dispatch:
    """One event as every wire sends it: `{"op": 0, "s": <per session>, "t", "id", "d"}`."""

    t: str
    d: Any
    id: str
    intent: int
    created_at: float  # SimClock.time() when published

    def envelope(self, seq: int) -> dict[str, Any]:
        return {"op": 0, "s": seq, "t": self.t, "id": self.id, "d": self.d}


class WireEndpoint(Protocol):
    """Implemented by the gateway hub and the webhook pusher."""

    def deliver(self, dispatch: Dispatch) -> None:
        """Queue the dispatch for every live session/callback that subscribed to its intent."""

    async def close_sessions(self, code: int) -> int:
        """Close every live session with this close code; returns how many were closed."""

    async def request_reconnect(self) -> int:
        """Send op 7 to every live session; returns how many got it."""

    def online(self) -> bool:
        """True while at least one bot session is live (guild sends need one: rule 51)."""


@dataclass
class EventBus:
    history: list[Dispatch] = field(default_factory=list)
    endpoints: list[WireEndpoint] = field(default_factory=list)

    def attach(self, endpoint: WireEndpoint) -> None:
        self.endpoints.append(endpoint)

    def publish(self, t: str, d: Any, *, at: float, envelope_id: str | None = None) -> Dispatch:
        dispatch = Dispatch(
            t=t, d=d, id=envelope_id or new_envelope_id(t), intent=intent_of(t), created_at=at
        )
        self.history.append(dispatch)
        for endpoint in self.endpoints:
            endpoint.deliver(dispatch)
        return dispatch

    def redeliver_last(self) -> Dispatch | None:
        """Push the newest dispatch again, same `id` and `d` (the platform redelivers: rule 79)."""
        if not self.history:
            return None
        last = self.history[-1]
        for endpoint in self.endpoints:
            endpoint.deliver(last)
        return last

    async def close_sessions(self, code: int) -> int:
        return sum([await endpoint.close_sessions(code) for endpoint in self.endpoints])

    async def request_reconnect(self) -> int:
        return sum([await endpoint.request_reconnect() for endpoint in self.endpoints])

    def online(self) -> bool:
        return any(endpoint.online() for endpoint in self.endpoints)
