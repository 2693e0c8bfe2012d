"""All emulator state, in memory: tokens, anchors, outbound messages, transcripts, the request log.

`SimState` is the one object every part of the emulator shares. The control API and the tests
create inbound traffic through its `inject_*` methods, which both publish the event on the bus and
record what a later send may anchor on (a message id or an event envelope id, bound to its scene and
target). The REST rules (`rules.py`) read and update the registries here.
"""

from __future__ import annotations

import base64
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from herald.sim.bus import Dispatch, EventBus
from herald.sim.clock import SimClock
from herald.sim.settings import SimSettings

Scene = Literal["c2c", "group", "channel", "dm"]
TokenStatus = Literal["ok", "missing", "wrong", "expired"]
NoticeLevel = Literal["info", "ok", "warning", "error"]
NOTICE_LEVELS: tuple[NoticeLevel, ...] = ("info", "ok", "warning", "error")

SCENES: tuple[Scene, ...] = ("c2c", "group", "channel", "dm")


def new_message_id() -> str:
    return "ROBOT1.0_" + secrets.token_urlsafe(48) + "!!"


def _quoting(anchor: Anchor, quote: str | None) -> dict[str, Any]:
    """`message_type` and `message_scene` of a C2C or group message: its own quoting handle and,
    when it quotes one, `ref_msg_idx` with type 103, the quote type (docs/sim.md names the
    sources)."""
    ext = [f"msg_idx={anchor.ref_idx}"]
    if quote:
        ext.append(f"ref_msg_idx={quote}")
    return {"message_type": 103 if quote else 0, "message_scene": {"source": "default", "ext": ext}}


def new_ref_idx() -> str:
    return "REFIDX_" + base64.b64encode(secrets.token_bytes(16)).decode()


def new_trace_id() -> str:
    return secrets.token_hex(16)


@dataclass(slots=True)
class Anchor:
    """An inbound user message: the only kind of id a send may use as `msg_id`."""

    msg_id: str
    scene: Scene
    target: str
    author: str
    received_at: float
    ref_idx: str
    replies: int = 0
    seqs: set[int] = field(default_factory=set)


@dataclass(slots=True)
class EventAnchor:
    """A delivered event's envelope id, usable as `event_id` when its type is replyable."""

    event_id: str
    t: str
    scene: Scene | None
    target: str
    received_at: float
    replies: int = 0
    seqs: set[int] = field(default_factory=set)


@dataclass(slots=True)
class Outbound:
    """A message the bot sent; never an anchor (using its id as msg_id is the seed bug)."""

    id: str
    scene: Scene
    target: str
    sent_at: float
    ref_idx: str
    content: str | None
    keyboard: dict[str, dict[str, Any]] | None = None  # shown buttons by id (markdown sends only)


@dataclass(frozen=True, slots=True)
class Injected:
    msg_id: str
    event_id: str
    dispatch: Dispatch
    ref_idx: str = ""  # the message's quoting handle (`msg_idx`)


@dataclass(slots=True)
class Token:
    value: str
    expires_at: float


@dataclass(slots=True)
class Fault:
    """`fail_next`: the next `remaining` OpenAPI calls answer with this status and code."""

    remaining: int
    status: int
    code: int
    message: str


class SimState:
    """The emulator's memory. Wires use `settings`, `clock`, `bus`, `check_token`; tests and the
    control API use the `inject_*` methods; the REST rules use the registries."""

    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        self.clock = SimClock()
        self.bus = EventBus()
        self.tokens: dict[str, Token] = {}
        self.current_token: Token | None = None
        # Status lines bots post for the page (`PUT /_sim/notices/{source}`); not traffic, so a
        # reset keeps them.
        self.notices: dict[str, dict[str, Any]] = {}
        self.reset()

    def reset(self) -> None:
        """Forget all traffic (anchors, transcripts, quotas, faults). Settings, the clock, issued
        tokens and live wire sessions stay, so a connected bot keeps working across a reset."""
        self.anchors: dict[str, Anchor] = {}
        self.event_anchors: dict[str, EventAnchor] = {}
        self.outbound: dict[str, Outbound] = {}
        self.ref_idx: dict[str, tuple[Scene, str]] = {}
        # id → (bytes, content type, redirect URL): what attachment URLs of injected messages serve.
        self.attachments: dict[str, tuple[bytes, str, str | None]] = {}
        self.transcripts: dict[tuple[Scene, str], list[dict[str, Any]]] = {}
        self.last_activity: dict[tuple[Scene, str], float] = {}
        self.requests: deque[dict[str, Any]] = deque(maxlen=self.settings.request_log_limit)
        self.request_count = 0
        self.faults: list[Fault] = []
        # Proactive permission per (scene, target); absent = settings.proactive_default_allowed (rule 41).
        self.proactive_allowed: dict[tuple[Scene, str], bool] = {}
        # Last inbound message per C2C user, for is_wakeup periods (rule 47).
        self.last_inbound_c2c: dict[str, float] = {}
        self.wakeups_used: dict[str, set[int]] = {}
        # Opaque per-feature stores owned by rules/media/stream modules.
        self.counters: dict[Any, deque[float]] = {}
        self.day_counts: dict[Any, int] = {}
        self.files: dict[str, Any] = {}
        self.uploads: dict[str, Any] = {}
        self.streams: dict[str, Any] = {}
        self.interactions: dict[str, str | None] = {}  # interaction id -> answered code (None = pending)
        # Clicks injected through the control API: interaction id -> where, which button, who, the answer.
        self.clicks: dict[str, dict[str, Any]] = {}
        self.dm_sessions: dict[str, dict[str, str]] = {}
        self.channel_guild: dict[str, str] = {}
        self.guild_messages: dict[str, dict[str, Any]] = {}  # id -> Message, for GET .../messages/{id}
        self.sets: dict[Any, set[str]] = {}
        self.upload_part_failures = 0
        self.channel_seq = 0

    def counters_set(self, key: Any) -> set[str]:
        """A named set that lives as long as the traffic (e.g. channels a guild was pushed to today)."""
        found = self.sets.get(key)
        if found is None:
            found = self.sets[key] = set()
        return found

    def set_notice(self, source: str, text: str, level: NoticeLevel = "info") -> dict[str, Any]:
        notice = {"source": source, "text": text, "level": level, "at": self.clock.time()}
        self.notices[source] = notice
        return notice

    # ---- auth -------------------------------------------------------------------------------

    def issue_token(self) -> Token:
        """Same token while more than 60 s remain; a new one in the last 60 s (rule 3)."""
        now = self.clock.time()
        current = self.current_token
        if current is not None and current.expires_at - now > 60:
            return current
        token = Token(value=secrets.token_urlsafe(32), expires_at=now + self.settings.token_ttl_s)
        self.tokens[token.value] = token
        self.current_token = token
        return token

    def check_token(self, token: str) -> TokenStatus:
        """`token` is the raw access token (without the `QQBot ` prefix)."""
        if not token:
            return "missing"
        known = self.tokens.get(token)
        if known is None:
            return "wrong"
        if self.clock.time() >= known.expires_at:
            return "expired"
        return "ok"

    def expire_tokens(self) -> int:
        now = self.clock.time()
        for token in self.tokens.values():
            token.expires_at = min(token.expires_at, now)
        self.current_token = None
        return len(self.tokens)

    # ---- transcript and request log -------------------------------------------------------

    def record(self, scene: Scene, target: str, entry: dict[str, Any]) -> None:
        key = (scene, target)
        log = self.transcripts.get(key)
        if log is None:
            log = self.transcripts[key] = []
        entry["n"] = len(log)
        log.append(entry)
        self.last_activity[key] = self.clock.time()

    def log_request(self, method: str, path: str, status: int, code: int | None) -> None:
        self.request_count += 1
        self.requests.append(
            {
                "n": self.request_count,
                "at": self.clock.time(),
                "method": method,
                "path": path,
                "status": status,
                "code": code,
            }
        )

    # ---- outbound registry -----------------------------------------------------------------

    def add_outbound(
        self, scene: Scene, target: str, content: str | None, msg_id: str | None = None
    ) -> Outbound:
        out = Outbound(
            id=msg_id or new_message_id(),
            scene=scene,
            target=target,
            sent_at=self.clock.time(),
            ref_idx=new_ref_idx(),
            content=content,
        )
        self.outbound[out.id] = out
        self.ref_idx[out.ref_idx] = (scene, target)
        return out

    # ---- inject: inbound traffic ------------------------------------------------------------

    def _anchor(self, scene: Scene, target: str, author: str, msg_id: str | None = None) -> Anchor:
        anchor = Anchor(
            msg_id=msg_id or new_message_id(),
            scene=scene,
            target=target,
            author=author,
            received_at=self.clock.time(),
            ref_idx=new_ref_idx(),
        )
        self.anchors[anchor.msg_id] = anchor
        self.ref_idx[anchor.ref_idx] = (scene, target)
        return anchor

    def _inbound(
        self, t: str, scene: Scene, target: str, anchor: Anchor, d: dict[str, Any], content: str
    ) -> Injected:
        dispatch = self.bus.publish(t, d, at=anchor.received_at)
        # A message event's envelope id is a known event, just not a replyable one (rule 39).
        self.event_anchors[dispatch.id] = EventAnchor(
            event_id=dispatch.id, t=t, scene=scene, target=target, received_at=anchor.received_at
        )
        self.record(
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

    def inject_c2c(
        self,
        user_openid: str,
        content: str,
        attachments: list[dict[str, Any]] | None = None,
        quote: str | None = None,
    ) -> Injected:
        """A user's private message to the bot: C2C_MESSAGE_CREATE (docs/sim.md)."""
        anchor = self._anchor("c2c", user_openid, user_openid)
        self.last_inbound_c2c[user_openid] = anchor.received_at
        self.wakeups_used.pop(user_openid, None)
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
            "timestamp": self.clock.rfc3339(anchor.received_at),
            **_quoting(anchor, quote),
            "attachments": attachments or [],
        }
        return self._inbound("C2C_MESSAGE_CREATE", "c2c", user_openid, anchor, d, content)

    def inject_group(
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
            "timestamp": self.clock.rfc3339(anchor.received_at),
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
                    "id": self.settings.bot_id,
                    "member_openid": self.settings.bot_id,
                    "username": self.settings.bot_name,
                    "is_you": True,
                    "bot": True,
                },
            ]
        t = "GROUP_AT_MESSAGE_CREATE" if at_bot else "GROUP_MESSAGE_CREATE"
        return self._inbound(t, "group", group_openid, anchor, d, content)

    def _guild_message(
        self, anchor: Anchor, guild_id: str, channel_id: str, author_id: str, content: str
    ) -> dict[str, Any]:
        self.channel_seq += 1
        message: dict[str, Any] = {
            "id": anchor.msg_id,
            "channel_id": channel_id,
            "guild_id": guild_id,
            "content": content,
            "timestamp": self.clock.rfc3339(anchor.received_at),
            "author": {"id": author_id, "username": f"user-{author_id}", "avatar": "", "bot": False},
            "member": {"joined_at": self.clock.rfc3339(anchor.received_at), "roles": ["1"]},
            "seq": self.channel_seq,
            "seq_in_channel": str(self.channel_seq),
            "attachments": [],
            "mentions": [],
        }
        self.guild_messages[anchor.msg_id] = message
        return message

    def inject_channel(
        self, channel_id: str, guild_id: str, author_id: str, content: str, *, at_bot: bool = True
    ) -> Injected:
        """A guild channel message: AT_MESSAGE_CREATE (with `<@!bot>`), or MESSAGE_CREATE if not at_bot."""
        anchor = self._anchor("channel", channel_id, author_id)
        self.channel_guild[channel_id] = guild_id
        if at_bot and "<@!" not in content:
            content = f"<@!{self.settings.bot_id}> {content}"
        d = self._guild_message(anchor, guild_id, channel_id, author_id, content)
        if at_bot:
            d["mentions"] = [{"id": self.settings.bot_id, "username": self.settings.bot_name, "bot": True}]
        t = "AT_MESSAGE_CREATE" if at_bot else "MESSAGE_CREATE"
        return self._inbound(t, "channel", channel_id, anchor, d, content)

    def inject_dm(self, guild_id: str, author_id: str, content: str) -> Injected:
        """A guild direct message: DIRECT_MESSAGE_CREATE; `guild_id` is the DM session's guild id."""
        anchor = self._anchor("dm", guild_id, author_id)
        session = self.dm_sessions.setdefault(
            guild_id, {"recipient_id": author_id, "channel_id": f"dmc-{guild_id}"}
        )
        d = self._guild_message(anchor, guild_id, session["channel_id"], author_id, content)
        d["src_guild_id"] = guild_id
        d["direct_message"] = True
        return self._inbound("DIRECT_MESSAGE_CREATE", "dm", guild_id, anchor, d, content)

    def inject_event(self, t: str, d: Any) -> Dispatch:
        """Any event. Relation events update proactive permission; replyable ones become event anchors."""
        from herald.sim import events  # local: events imports this module's types

        return events.publish(self, t, d)


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
