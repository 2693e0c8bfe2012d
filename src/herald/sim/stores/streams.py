"""Streamed C2C replies in progress or done, by stream id (the id of the message they grow)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from herald.sim.stores.anchors import Outbound

StreamState = Literal["open", "done", "rolled_back"]


@dataclass
class Stream:
    outbound: Outbound
    target: str
    index: int
    content: str
    first_content: str
    last_at: float
    state: StreamState = "open"
    frames: int = 0  # chunks accepted
    msg_id: Any = None  # the anchor the first chunk replied to (msg_id or event_id)
    msg_seq: Any = None  # the first chunk's msg_seq: the one the whole stream used

    @property
    def id(self) -> str:
        return self.outbound.id


@dataclass
class Streams:
    by_id: dict[str, Stream] = field(default_factory=dict)
