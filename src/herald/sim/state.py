"""All emulator state, in memory: one store per feature (`stores/`), the clock, the event bus,
faults, the proactive permissions and the guild and interaction bookkeeping the rules read.

`SimState` composes the stores; it does not build events. Inbound traffic is made by
`inject.Injector` (and `events.publish`), above the stores; the REST rules (`rules.py`) and the
wires read and update the stores.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Literal

from herald.sim.bus import Dispatch, EventBus
from herald.sim.clock import SimClock
from herald.sim.settings import SimSettings
from herald.sim.stores.anchors import (
    SCENES,
    Anchor,
    Anchors,
    EventAnchor,
    Outbound,
    Scene,
    new_message_id,
    new_ref_idx,
)
from herald.sim.stores.log import RequestLog, Transcripts
from herald.sim.stores.media import MediaStore
from herald.sim.stores.quotas import Quotas
from herald.sim.stores.streams import Streams
from herald.sim.stores.tokens import Token, Tokens, TokenStatus

NoticeLevel = Literal["info", "ok", "warning", "error"]
NOTICE_LEVELS: tuple[NoticeLevel, ...] = ("info", "ok", "warning", "error")


def new_trace_id() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class Injected:
    msg_id: str
    event_id: str
    dispatch: Dispatch
    ref_idx: str = ""  # the message's quoting handle (`msg_idx`)


@dataclass(slots=True)
class Fault:
    """`fail_next`: the next `remaining` OpenAPI calls answer with this status and code."""

    remaining: int
    status: int
    code: int
    message: str


class SimState:
    """The emulator's memory. Wires use `settings`, `clock`, `bus`, `tokens`; the REST rules and
    the injector use the stores."""

    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        self.clock = SimClock()
        self.bus = EventBus()
        self.tokens = Tokens()
        # Status lines bots post for the page (`PUT /_sim/notices/{source}`); not traffic, so a
        # reset keeps them.
        self.notices: dict[str, dict[str, Any]] = {}
        self.reset()

    def reset(self) -> None:
        """Forget all traffic (anchors, transcripts, quotas, faults). Settings, the clock, issued
        tokens and live wire sessions stay, so a connected bot keeps working across a reset."""
        self.anchors = Anchors()
        self.transcripts = Transcripts()
        self.requests = RequestLog(self.settings.request_log_limit)
        self.quotas = Quotas()
        self.media = MediaStore()
        self.streams = Streams()
        self.faults: list[Fault] = []
        # Proactive permission per (scene, target); absent = settings.proactive_default_allowed (rule 41).
        self.proactive_allowed: dict[tuple[Scene, str], bool] = {}
        # Last inbound message per C2C user, for is_wakeup periods (rule 47).
        self.last_inbound_c2c: dict[str, float] = {}
        self.wakeups_used: dict[str, set[int]] = {}
        self.interactions: dict[str, str | None] = {}  # interaction id -> answered code (None = pending)
        # Clicks injected through the control API: interaction id -> where, which button, who, the answer.
        self.clicks: dict[str, dict[str, Any]] = {}
        self.dm_sessions: dict[str, dict[str, str]] = {}
        self.channel_guild: dict[str, str] = {}
        self.channel_seq = 0

    def set_notice(self, source: str, text: str, level: NoticeLevel = "info") -> dict[str, Any]:
        notice = {"source": source, "text": text, "level": level, "at": self.clock.time()}
        self.notices[source] = notice
        return notice

    # ---- what every wire needs: tokens, the transcript and the request log ------------------

    def issue_token(self) -> Token:
        return self.tokens.issue(self.clock.time(), self.settings.token_ttl_s)

    def check_token(self, token: str) -> TokenStatus:
        return self.tokens.check(token, self.clock.time())

    def record(self, scene: Scene, target: str, entry: dict[str, Any]) -> None:
        self.transcripts.record(scene, target, entry, self.clock.time())

    def log_request(self, method: str, path: str, status: int, code: int | None) -> None:
        self.requests.log(method, path, status, code, self.clock.time())

    def add_outbound(
        self, scene: Scene, target: str, content: str | None, msg_id: str | None = None
    ) -> Outbound:
        return self.anchors.add_outbound(scene, target, content, self.clock.time(), msg_id)


__all__ = [
    "NOTICE_LEVELS",
    "SCENES",
    "Anchor",
    "EventAnchor",
    "Fault",
    "Injected",
    "NoticeLevel",
    "Outbound",
    "Scene",
    "SimState",
    "Token",
    "TokenStatus",
    "new_message_id",
    "new_ref_idx",
    "new_trace_id",
]
