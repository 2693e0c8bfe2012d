"""The emulated account: its message ids, what the bot sent (the transcript), every action it
asked for, and the faults the control API set."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

ChatType = Literal["private", "group"]


class OneBotSimSettings(BaseModel):
    self_id: int = 10001
    access_token: str = "sim-token"
    # The bot's universal reverse-WebSocket URL; the emulator connects to it ("" = not yet).
    reverse_ws_url: str = ""
    reconnect_interval_s: float = 0.5
    message_format: Literal["array", "string"] = "array"
    host: str = "127.0.0.1"
    port: int = 0


@dataclass(slots=True)
class Sent:
    """One send the bot asked for, answered or refused."""

    action: str
    chat: ChatType
    chat_id: str
    message: list[dict[str, Any]]
    status: str
    retcode: int
    message_id: int | None

    def entry(self) -> dict[str, Any]:
        text = "".join(str(s["data"].get("text", "")) for s in self.message if s.get("type") == "text")
        return {
            "action": self.action,
            "message_id": self.message_id,
            "message": self.message,
            "text": text,
            "status": self.status,
            "retcode": self.retcode,
        }


@dataclass(slots=True)
class Fault:
    retcode: int = 0
    times: int = 0
    delay_s: float = 0.0
    after: int = 0  # calls let through before the fault starts


@dataclass(slots=True)
class Account:
    settings: OneBotSimSettings
    transcript: list[Sent] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    faults: dict[str, Fault] = field(default_factory=dict)
    # Message ids are int32 in OneBot v11; the implementation hands them out.
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1_000_001))

    def new_message_id(self) -> int:
        return next(self._ids)

    def now(self) -> int:
        return int(time.time())

    def take_fault(self, action: str) -> Fault | None:
        fault = self.faults.get(action)
        if fault is None:
            return None
        if fault.after > 0:
            fault.after -= 1
            return None
        if fault.times > 0:
            fault.times -= 1
            if fault.times == 0 and fault.delay_s == 0:
                del self.faults[action]
            return fault
        if fault.delay_s > 0:
            return Fault(delay_s=fault.delay_s)
        return None

    def sent_to(self, chat: ChatType, chat_id: str) -> list[dict[str, Any]]:
        return [s.entry() for s in self.transcript if s.chat == chat and s.chat_id == chat_id]

    def reset(self) -> None:
        self.transcript.clear()
        self.actions.clear()
        self.faults.clear()
