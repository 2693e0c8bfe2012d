"""The emulated account: its message ids, every message it saw or sent (for `get_msg`), what the
bot sent (the transcript), the requests it got and how they were answered, every action asked for,
and the faults the control API set."""

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
    # HTTP POST: where events are posted ("" = nowhere), the signing secret, and how long a POST
    # may take.
    post_url: str = ""
    secret: str = ""
    post_timeout_s: float = 10.0
    heartbeat_interval_s: float = 0.0  # 0: no heartbeat events


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
    recalled: bool = False

    def entry(self) -> dict[str, Any]:
        text = "".join(str(s["data"].get("text", "")) for s in self.message if s.get("type") == "text")
        return {
            "action": self.action,
            "message_id": self.message_id,
            "message": self.message,
            "text": text,
            "status": self.status,
            "retcode": self.retcode,
            "recalled": self.recalled,
        }


@dataclass(slots=True)
class Message:
    """A message the account saw or sent, as `get_msg` tells it."""

    chat: ChatType
    chat_id: str
    sender: dict[str, Any]
    message: list[dict[str, Any]]
    time: int


@dataclass(slots=True)
class Request:
    """A friend request or a group invitation/join request, and its answer once given."""

    flag: str
    request_type: str
    sub_type: str
    user_id: str
    group_id: str
    comment: str
    approve: bool | None = None
    remark: str = ""
    reason: str = ""
    answered_by: str = ""  # the action or "quick operation" that answered it

    def entry(self) -> dict[str, Any]:
        return {
            "flag": self.flag,
            "request_type": self.request_type,
            "sub_type": self.sub_type,
            "user_id": self.user_id,
            "group_id": self.group_id,
            "comment": self.comment,
            "answered": bool(self.answered_by),
            "approve": self.approve,
            "remark": self.remark,
            "reason": self.reason,
            "answered_by": self.answered_by,
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
    messages: dict[int, Message] = field(default_factory=dict)
    requests: dict[str, Request] = field(default_factory=dict)
    friends: dict[str, str] = field(default_factory=dict)  # user id → nickname, as they wrote
    groups: dict[str, dict[str, str]] = field(default_factory=dict)  # group id → member id → role
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
        self.messages.clear()
        self.requests.clear()
