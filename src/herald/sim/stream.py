"""C2C streaming: `/v2/users/{openid}/stream_messages` and the legacy `stream` field (rules 63-68).

A stream is one outbound message built from chunks. The first chunk is checked and charged like
any send (one reply against its msg_id, one msg_seq); later chunks only have to continue it: the
same stream id, `index` = previous + 1, not finished yet. A stream left open longer than
`stream_timeout_s` on the emulator's clock is rolled back to its first chunk's content, as the
platform does; `view` shows the result (the control API serves it at `/_sim/streams/{id}`).
"""

from __future__ import annotations

from typing import Any

from herald.sim import rules
from herald.sim.errors import SimError
from herald.sim.state import SimState
from herald.sim.stores.streams import Stream

DONE = 10  # input_state of the last chunk


def _expire(state: SimState, stream: Stream) -> None:
    if stream.state == "open" and state.clock.time() - stream.last_at > state.settings.stream_timeout_s:
        stream.state = "rolled_back"
        stream.content = stream.first_content
        stream.outbound.content = stream.first_content


def view(state: SimState, stream_id: str) -> dict[str, Any] | None:
    stream = state.streams.by_id.get(stream_id)
    if not isinstance(stream, Stream):
        return None
    _expire(state, stream)
    return {
        "id": stream.id,
        "target": stream.target,
        "state": stream.state,
        "index": stream.index,
        "frames": stream.frames,
        "msg_id": stream.msg_id,
        "msg_seq": stream.msg_seq,
        "content": stream.content,
    }


def _int_field(body: dict[str, Any], key: str, default: int | None = None) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SimError(12002, f"{key}必须是整数")
    return value


def _continue(state: SimState, target: str, stream_id: Any, index: int) -> Stream:
    stream = state.streams.by_id.get(str(stream_id))
    if not isinstance(stream, Stream) or stream.target != target:
        raise SimError(12002, f"stream_msg_id无效: {stream_id}")
    _expire(state, stream)
    if stream.state == "rolled_back":
        raise SimError(12002, "流式消息已超时，内容已回滚")
    if stream.state == "done":
        raise SimError(12002, "流式消息已结束")
    if index != stream.index + 1:
        raise SimError(12002, f"index必须连续: 期望{stream.index + 1}，收到{index}")
    return stream


def _start(state: SimState, target: str, index: int, content: str) -> Stream:
    if index not in (0, 1):  # official examples start at 0, NoneBot's docstring at 1
        raise SimError(12002, f"首个分片的index必须为0或1，收到{index}")
    outbound = state.add_outbound("c2c", target, content)
    stream = Stream(
        outbound=outbound,
        target=target,
        index=index,
        content=content,
        first_content=content,
        last_at=state.clock.time(),
    )
    state.streams.by_id[stream.id] = stream
    return stream


def _reply(state: SimState, stream: Stream) -> dict[str, Any]:
    return {
        "id": stream.id,
        "timestamp": state.clock.rfc3339(),
        "ext_info": {"ref_idx": stream.outbound.ref_idx},
        "remain_msg_len": max(0, state.settings.stream_max_len - len(stream.content)),
    }


# The platform's answer when replace-mode text drops or changes delivered text: HTTP 404 with
# `code` 40007 and `err_code` 40113003 (a captured answer, LangBot #2454).
PREFIX_CHANGED = 40007
PREFIX_CHANGED_ERR_CODE = 40113003
CONTENT_TYPES = ("text", "markdown")


def official_chunk(
    state: SimState, target: str, body: dict[str, Any]
) -> tuple[dict[str, Any], rules.Plan | None]:
    """One `/stream_messages` chunk; returns the response and the plan charged (first chunk only)."""
    if state.settings.stream_refused_code is not None:
        raise SimError(state.settings.stream_refused_code)
    input_state = _int_field(body, "input_state", 1)
    if input_state not in (1, DONE):
        raise SimError(12002, f"input_state必须为1或10，收到{input_state}")
    index = _int_field(body, "index", 0)
    mode = body.get("input_mode", "append")
    if mode not in ("append", "replace"):
        raise SimError(12002, f"input_mode无效: {mode!r}")
    content_type = body.get("content_type", "markdown")
    if content_type not in CONTENT_TYPES:
        raise SimError(12002, f"content_type无效: {content_type!r}")
    raw = body.get("content_raw", "")
    if not isinstance(raw, str):
        raise SimError(12002, "content_raw必须是字符串")
    plan: rules.Plan | None = None
    if body.get("stream_msg_id"):
        stream = _continue(state, target, body["stream_msg_id"], index)
        if mode == "replace" and not raw.startswith(stream.content):
            raise SimError(PREFIX_CHANGED, status=404, err_code=PREFIX_CHANGED_ERR_CODE)
        content = raw if mode == "replace" else stream.content + raw
        if len(content) > state.settings.stream_max_len:
            raise SimError(40054007, "消息过长")
        stream.content = content
        stream.index = index
    else:
        if index != 0:
            raise SimError(12002, f"首个分片的index必须为0，收到{index}")
        if not raw.strip():
            raise SimError(50006, "流式消息首个分片不能为空")
        if len(raw) > state.settings.stream_max_len:
            raise SimError(40054007, "消息过长")
        if content_type == "markdown" and not state.settings.markdown_allowed:
            raise SimError(40034127)
        if body.get("is_wakeup"):
            # A recall stream skips the msg_id/event_id check (docs/sim.md).
            body = {k: v for k, v in body.items() if k not in ("msg_id", "event_id")}
        elif body.get("msg_id") and body.get("event_id") and state.settings.stream_both_ids == "msg_id_wins":
            # OpenClaw's qqbot (Tencent's own plugin) sends both on every frame, and the platform
            # streams them; the msg_id is the anchor (docs/sim.md, rule 21).
            body = {k: v for k, v in body.items() if k != "event_id"}
        plan = rules.plan_v2(state, "c2c", target, body)
        rules.commit(plan)
        stream = _start(state, target, index, raw)
        stream.msg_id = body.get("msg_id") or body.get("event_id")
        stream.msg_seq = body.get("msg_seq")
    stream.last_at = state.clock.time()
    stream.frames += 1
    stream.outbound.content = stream.content
    if input_state == DONE:
        stream.state = "done"
    return _reply(state, stream), plan


def legacy_check(body: dict[str, Any]) -> dict[str, Any] | None:
    """The legacy `stream` object on `/messages` (rule 68), validated; None when absent."""
    if "stream" not in body or body["stream"] is None:
        return None
    stream = body["stream"]
    if not isinstance(stream, dict):
        raise SimError(12002, "stream必须是对象")
    if "id" in stream and stream["id"] is None:
        raise SimError(12002, "stream.id不能为null")
    if stream.get("state") == DONE and body.get("msg_type") == 2:
        markdown = body.get("markdown")
        text = markdown.get("content", "") if isinstance(markdown, dict) else ""
        if not str(text).endswith("\n"):
            raise SimError(40034124, "流式消息md分片需要\n结束")
    return stream


def legacy_chunk(state: SimState, target: str, stream_field: dict[str, Any], text: str) -> dict[str, Any]:
    """Apply a checked legacy chunk: the first opens a stream, later ones append their delta."""
    index = stream_field.get("index", 0)
    index = index if isinstance(index, int) and not isinstance(index, bool) else 0
    if stream_field.get("id"):
        stream = _continue(state, target, stream_field["id"], index)
        stream.content += text
        stream.index = index
    else:
        stream = _start(state, target, index, text)
    stream.last_at = state.clock.time()
    stream.frames += 1
    stream.outbound.content = stream.content
    if stream_field.get("state") == DONE:
        stream.state = "done"
    return _reply(state, stream)


def legacy_continues(state: SimState, stream_field: dict[str, Any] | None) -> bool:
    return bool(stream_field and stream_field.get("id"))
