"""The send rules (rules 20-59 in docs/sim.md): what makes a send passive, proactive or refused.

`plan_v2` / `plan_guild` check a send without changing anything and return a `Plan`; the caller
charges it with `commit` only once the send has succeeded, so failed sends never use up a reply
count, a msg_seq or a quota (rule 34).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from herald.sim import keyboard as keyboards
from herald.sim import media, quotas
from herald.sim.clock import BEIJING
from herald.sim.errors import SimError
from herald.sim.events import GUILD_EVENTS
from herald.sim.state import Anchor, EventAnchor, Scene, SimState

Kind = Literal["passive", "event", "proactive", "wakeup"]

# Rule 47's periods as the platform counts them: calendar days (Beijing time) after the day of the
# user's last message, (first day, last day): same day, days 1-3, 4-7, 8-30; none after day 30.
WAKEUP_PERIODS = ((0, 0), (1, 3), (4, 7), (8, 30))
URL = re.compile(r"(?i)\b(?:https?://|www\.)\S+|\b[a-z0-9-]+\.(?:com|cn|net|org|io)\b")

REPLYABLE_EVENTS: dict[Scene, frozenset[str]] = {
    "c2c": frozenset({"INTERACTION_CREATE", "C2C_MSG_RECEIVE", "FRIEND_ADD"}),
    "group": frozenset({"INTERACTION_CREATE", "GROUP_ADD_ROBOT", "GROUP_MSG_RECEIVE"}),
    "channel": GUILD_EVENTS | {"INTERACTION_CREATE"},
    "dm": GUILD_EVENTS,
}


@dataclass
class Plan:
    """A checked send: how it is anchored, and what succeeding will charge."""

    scene: Scene
    target: str
    kind: Kind
    anchor: Anchor | None = None
    event: EventAnchor | None = None
    seq: int | None = None
    counts_as_reply: bool = True
    charges: list[Callable[[], None]] = field(default_factory=list)


def commit(plan: Plan) -> None:
    anchor = plan.anchor or plan.event
    if anchor is not None:
        if plan.seq is not None:
            anchor.seqs.add(plan.seq)
        if plan.counts_as_reply:
            anchor.replies += 1
    for charge in plan.charges:
        charge()


def _int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SimError(12002, f"参数类型错误: {value!r}")
    try:
        return int(value)
    except ValueError:
        raise SimError(12002, f"参数类型错误: {value!r}") from None


def window_of(state: SimState, scene: Scene) -> int:
    s = state.settings
    return {"c2c": s.c2c_window_s, "group": s.group_window_s}.get(scene, s.guild_window_s)


def reply_limit_of(state: SimState, scene: Scene) -> int | None:
    s = state.settings
    return {"c2c": s.c2c_reply_limit, "group": s.group_reply_limit}.get(scene)


def anchor_ids(state: SimState, body: dict[str, Any]) -> tuple[str | None, str | None]:
    """The (msg_id, event_id) a send carries, after rule 21 (both set, or mixed with is_wakeup)."""
    msg_id = body.get("msg_id") or None
    event_id = body.get("event_id") or None
    if msg_id is not None and event_id is not None:
        if state.settings.both_ids == "reject":
            raise SimError(12002, "msg_id与event_id只能二选一")
        msg_id = None
    if body.get("is_wakeup") and (msg_id or event_id):
        raise SimError(12002, "is_wakeup不能与msg_id或event_id同时使用")
    return (str(msg_id) if msg_id else None, str(event_id) if event_id else None)


# ---- v2 (C2C and group) ------------------------------------------------------------------------


def validate_v2_body(state: SimState, scene: Scene, target: str, body: dict[str, Any]) -> None:
    """Message body rules 53-59 and 63 for `/v2/users|groups/{id}/messages`."""
    msg_type = body.get("msg_type", 0)
    allowed = {0, 2, 3, 4, 6, 7} if scene == "c2c" else {0, 2, 3, 4, 7}
    if isinstance(msg_type, bool) or not isinstance(msg_type, int) or msg_type not in allowed:
        raise SimError(340069 if scene == "group" else 22006, f"msg_type {msg_type!r} 无效")
    if scene == "group":
        if body.get("stream") is not None:
            raise SimError(12002, "群消息不支持流式参数")
        if body.get("is_wakeup"):
            raise SimError(40034123)
    content = body.get("content")
    has_content = isinstance(content, str) and content.strip() != ""
    markdown = body.get("markdown")
    keyboard = body.get("keyboard")
    media_field = body.get("media")
    if msg_type != 6 and not (
        has_content or markdown or media_field or body.get("ark") or body.get("embed") or keyboard
    ):
        raise SimError(50006)
    if msg_type == 0 and not has_content:
        raise SimError(22006, "msg_type 0 需要content")
    if msg_type == 2:
        _check_markdown(state, scene, markdown, has_content)
    if msg_type == 3 and not isinstance(body.get("ark"), dict):
        raise SimError(22006, "msg_type 3 需要ark")
    if msg_type == 4 and not isinstance(body.get("embed"), dict):
        raise SimError(22006, "msg_type 4 需要embed")
    if msg_type == 6:
        _check_input_notify(body.get("input_notify"))
    if msg_type == 7:
        if not isinstance(media_field, dict) or not media_field.get("file_info"):
            raise SimError(22006, "msg_type 7 需要media.file_info")
        media.require_file_info(state, scene, str(media_field["file_info"]))
    if keyboard is not None:
        keyboards.check(state, scene, keyboard)
    reference = body.get("message_reference")
    if isinstance(reference, dict) and state.settings.reference_check == "reject":
        # Rule 62: a quote must name a REFIDX of this conversation (inbound msg_idx or outbound ref_idx).
        if state.anchors.ref_idx.get(str(reference.get("message_id"))) != (scene, target):
            raise SimError(12002, "message_reference.message_id不是本会话的REFIDX")
    if scene == "group" and state.settings.group_url_check and has_content and URL.search(str(content)):
        raise SimError(40054010)


def _check_markdown(state: SimState, scene: Scene, markdown: Any, has_content: bool) -> None:
    if not isinstance(markdown, dict):
        raise SimError(22006, "msg_type 2 需要markdown")
    if has_content:
        raise SimError(22006, "markdown消息不能同时携带content")
    if markdown.get("content") and markdown.get("custom_template_id"):
        raise SimError(50057)
    if markdown.get("content") and not state.settings.markdown_allowed:
        raise SimError(304036 if scene == "group" else 40034127)


def _check_input_notify(notify: Any) -> None:
    if not isinstance(notify, dict):
        raise SimError(50059, "msg_type 6 需要input_notify")
    second = notify.get("input_second")
    if notify.get("input_type", 1) != 1 or isinstance(second, bool) or not isinstance(second, int):
        raise SimError(50059)
    if not 1 <= second <= 60:
        raise SimError(50059, f"input_second必须在1到60之间: {second}")


def plan_v2(
    state: SimState, scene: Scene, target: str, body: dict[str, Any], *, new_reply: bool = True
) -> Plan:
    """Classify and check a v2 send (rules 20-48); raises `SimError` with the platform's code.

    `new_reply=False` is a later chunk of a stream already counted as one reply (rule 33).
    """
    msg_id, event_id = anchor_ids(state, body)
    if msg_id is not None:
        plan = _plan_msg_id(state, scene, target, msg_id, body, new_reply)
        plan.counts_as_reply = new_reply
        return plan
    if event_id is not None:
        return _plan_event_id(state, scene, target, event_id, body)
    if body.get("is_wakeup"):
        return _plan_wakeup(state, scene, target)
    return plan_proactive_v2(state, scene, target)


def _seq_of(body: dict[str, Any]) -> int:
    seq = _int_or_none(body.get("msg_seq"))
    return 1 if seq is None else seq  # rule 36: missing msg_seq = 1


def _plan_msg_id(
    state: SimState, scene: Scene, target: str, msg_id: str, body: dict[str, Any], new_reply: bool
) -> Plan:
    anchor = state.anchors.messages.get(msg_id)
    if anchor is None or anchor.scene != scene or anchor.target != target:
        raise SimError(40034024)  # rules 22-25: unknown, bot-sent, or another scene/target
    seq = _seq_of(body)
    if seq in anchor.seqs:
        raise SimError(40054005)  # rule 35
    now = state.clock.time()
    if now - anchor.received_at > window_of(state, scene):
        raise SimError(state.settings.expired_code)  # rules 27-28
    limit = reply_limit_of(state, scene)
    if new_reply and limit is not None and anchor.replies >= limit:
        raise SimError(40034128)  # rules 30-31
    return Plan(scene=scene, target=target, kind="passive", anchor=anchor, seq=seq)


def _event_anchor(state: SimState, scene: Scene, target: str, event_id: str) -> EventAnchor:
    event = state.anchors.events.get(event_id)
    if event is None or event.scene != scene or (event.target and event.target != target):
        raise SimError(40034025)  # rules 38, 40
    replyable = REPLYABLE_EVENTS[scene]
    if event.t == "FRIEND_ADD" and not state.settings.friend_add_replyable:
        replyable = replyable - {"FRIEND_ADD"}
    if event.t not in replyable:
        raise SimError(40034027)  # rule 39
    if state.clock.time() - event.received_at > window_of(state, scene):
        raise SimError(40034026)
    return event


def _plan_event_id(state: SimState, scene: Scene, target: str, event_id: str, body: dict[str, Any]) -> Plan:
    event = _event_anchor(state, scene, target, event_id)
    seq = _seq_of(body)
    if seq in event.seqs:
        raise SimError(40054005)
    return Plan(scene=scene, target=target, kind="event", event=event, seq=seq)


def _plan_wakeup(state: SimState, scene: Scene, target: str) -> Plan:
    if scene != "c2c":
        raise SimError(40034123)
    last = state.last_inbound_c2c.get(target)
    period = None if last is None else wakeup_period(last, state.clock.time())
    if period is None:
        raise SimError(40034123, "用户30天内没有互动，不支持互动召回消息")
    used = state.wakeups_used.setdefault(target, set())
    if period in used:
        raise SimError(40034122)
    return Plan(scene=scene, target=target, kind="wakeup", charges=[lambda: used.add(period)])


def wakeup_period(last: float, now: float) -> int | None:
    """The recall period of a send at `now` after the user's message at `last`, or None past day 30."""
    days = (datetime.fromtimestamp(now, BEIJING).date() - datetime.fromtimestamp(last, BEIJING).date()).days
    return next((i for i, (first, end) in enumerate(WAKEUP_PERIODS) if first <= days <= end), None)


def plan_proactive_v2(state: SimState, scene: Scene, target: str) -> Plan:
    """Rules 41-46: permission, then the mode's quota or rate limits."""
    s = state.settings
    if s.mode == "2025":
        raise SimError(s.withdrawn_code, "主动推送能力已不再提供")
    if not state.proactive_allowed.get((scene, target), s.proactive_default_allowed):
        raise SimError(s.no_permission_code)
    now = state.clock.time()
    plan = Plan(scene=scene, target=target, kind="proactive")
    if s.mode == "2023":
        month = ("month", scene, target, quotas.month_key(now))
        if state.quotas.count(month) >= s.monthly_proactive_limit:
            raise SimError(22009)
        plan.charges.append(lambda: state.quotas.charge(month))
        return plan
    if not s.rate_limits:
        return plan
    if scene == "c2c":
        limits: list[tuple[tuple[str, ...], float, int]] = [
            (("bot", "c2c"), 1.0, s.c2c_bot_qps),
            (("minute", "c2c", target), 60.0, s.c2c_per_user_per_minute),
        ]
        daily = s.c2c_per_user_per_day
    else:
        limits = [
            (("bot", "group"), 60.0, s.group_bot_per_minute),
            (("minute", "group", target), 60.0, s.group_per_group_per_minute),
        ]
        daily = s.group_per_group_per_day
    for key, window, limit in limits:
        if state.quotas.in_window(key, window, now) >= limit:
            raise SimError(40034100)
    day: tuple[str, ...] = ("day", scene, target, quotas.day_key(now))
    if state.quotas.count(day) >= daily:
        raise SimError(40034100)

    def charge() -> None:
        for key, _, _ in limits:
            state.quotas.charge_window(key, now)
        state.quotas.charge(day)

    plan.charges.append(charge)
    return plan


# ---- guild channel and DM --------------------------------------------------------------------------


def plan_guild(state: SimState, scene: Scene, target: str, body: dict[str, Any]) -> Plan:
    """Rules 26, 29, 49-52 for `/channels/{id}/messages` and `/dms/{guild_id}/messages`."""
    s = state.settings
    if not any(body.get(k) for k in ("content", "embed", "ark", "image", "file_image", "markdown")):
        raise SimError(50006)
    if body.get("keyboard") is not None:
        keyboards.check(state, scene, body["keyboard"])
    if s.require_session_for_guild and not state.bus.online():
        raise SimError(304018)
    msg_id, event_id = anchor_ids(state, body)
    now = state.clock.time()
    plan = Plan(scene=scene, target=target, kind="proactive", counts_as_reply=False)
    if msg_id is not None:
        anchor = state.anchors.messages.get(msg_id)
        if anchor is None or anchor.scene != scene or anchor.target != target:
            own = msg_id in state.anchors.outbound
            raise SimError(s.guild_own_message_code if own else 304026)
        if now - anchor.received_at > s.guild_window_s:
            raise SimError(s.guild_expired_code)
        plan.kind, plan.anchor = "passive", anchor
    elif event_id is not None:
        plan.kind, plan.event = "event", _event_anchor(state, scene, target, event_id)
    else:
        _plan_guild_proactive(state, scene, target, now, plan)
    if s.rate_limits and scene == "channel":
        key = ("channel-second", target)
        if state.quotas.in_window(key, 1.0, now) >= s.guild_channel_per_second:
            raise SimError(20028)
        plan.charges.append(lambda: state.quotas.charge_window(key, now))
    return plan


def _in_quiet_hours(state: SimState, now: float) -> bool:
    window = state.settings.quiet_hours
    if window is None:
        return False
    start, end = window
    hour = datetime.fromtimestamp(now, BEIJING).hour
    return start <= hour < end if start <= end else (hour >= start or hour < end)


def _plan_guild_proactive(state: SimState, scene: Scene, target: str, now: float, plan: Plan) -> None:
    s = state.settings
    if _in_quiet_hours(state, now):
        raise SimError(304022)
    day = quotas.day_key(now)
    if scene == "channel":
        per_channel = ("guild-channel", target, day)
        if state.quotas.count(per_channel) >= s.guild_channel_per_day:
            raise SimError(304045)
        guild = state.channel_guild.get(target, target)
        channels = state.quotas.set_of(("guild-channels", guild, day))
        if target not in channels and len(channels) >= s.guild_channels_per_guild_per_day:
            raise SimError(304047)

        def charge_channel() -> None:
            state.quotas.charge(per_channel)
            channels.add(target)

        plan.charges.append(charge_channel)
        return
    session = state.dm_sessions.get(target, {})
    per_user = ("dm-user", session.get("recipient_id", target), day)
    total = ("dm-total", day)
    if state.quotas.count(per_user) >= s.dm_per_user_per_day:
        raise SimError(304049)
    if state.quotas.count(total) >= s.dm_total_per_day:
        raise SimError(304050)

    def charge_dm() -> None:
        state.quotas.charge(per_user)
        state.quotas.charge(total)

    plan.charges.append(charge_dm)
