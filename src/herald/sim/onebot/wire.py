"""OneBot v11 payloads as the implementation writes them: events and action answers
(docs/sim.md, "OneBot v11", names the spec's section for each field)."""

from __future__ import annotations

import json
import re
from typing import Any

from herald.sim.onebot.account import Account

_CQ = re.compile(r"\[CQ:([a-zA-Z0-9_.-]+)((?:,[^,\]]*)*)\]")


def _unescape(text: str, in_code: bool = False) -> str:
    text = text.replace("&#91;", "[").replace("&#93;", "]")
    return (text.replace("&#44;", ",") if in_code else text).replace("&amp;", "&")


def _escape(text: str, in_code: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("[", "&#91;").replace("]", "&#93;")
    return text.replace(",", "&#44;") if in_code else text


def segments(message: Any, auto_escape: bool = False) -> list[dict[str, Any]]:
    """A message in either of the spec's forms (a CQ string or a segment array) as segments; with
    `auto_escape`, a string is plain text, its CQ codes not read."""
    if isinstance(message, str) and auto_escape:
        return [{"type": "text", "data": {"text": message}}]
    if isinstance(message, list):
        if not all(isinstance(s, dict) and isinstance(s.get("type"), str) for s in message):
            raise ValueError("every segment needs a string `type`")
        return [{"type": s["type"], "data": dict(s.get("data") or {})} for s in message]
    if not isinstance(message, str):
        raise ValueError("message must be a string or a list of segments")
    out: list[dict[str, Any]] = []
    at = 0
    for match in _CQ.finditer(message):
        if match.start() > at:
            out.append({"type": "text", "data": {"text": _unescape(message[at : match.start()])}})
        data = {}
        for pair in match.group(2).split(",")[1:]:
            key, _, value = pair.partition("=")
            data[key] = _unescape(value, True)
        out.append({"type": match.group(1), "data": data})
        at = match.end()
    if at < len(message):
        out.append({"type": "text", "data": {"text": _unescape(message[at:])}})
    return out


def cq_string(parts: list[dict[str, Any]]) -> str:
    out = []
    for part in parts:
        if part["type"] == "text":
            out.append(_escape(str(part["data"].get("text", ""))))
        else:
            params = "".join(f",{k}={_escape(str(v), True)}" for k, v in part["data"].items())
            out.append(f"[CQ:{part['type']}{params}]")
    return "".join(out)


def number(value: str) -> int | str:
    """An id as the spec types it (a number), when it is one."""
    return int(value) if value.isdigit() else value


def message_event(
    account: Account,
    chat: str,
    chat_id: str,
    user_id: str,
    parts: list[dict[str, Any]],
    message_id: int,
    nickname: str,
    role: str,
) -> dict[str, Any]:
    settings = account.settings
    sender: dict[str, Any] = {"user_id": number(user_id), "nickname": nickname, "sex": "unknown", "age": 0}
    event: dict[str, Any] = {
        "time": account.now(),
        "self_id": settings.self_id,
        "post_type": "message",
        "message_type": chat,
        "sub_type": "friend" if chat == "private" else "normal",
        "message_id": message_id,
        "user_id": number(user_id),
        "message": parts if settings.message_format == "array" else cq_string(parts),
        "raw_message": cq_string(parts),
        "font": 0,
        "sender": sender,
    }
    if chat == "group":
        event["group_id"] = number(chat_id)
        event["anonymous"] = None
        sender.update({"card": "", "area": "", "level": "", "role": role, "title": ""})
    return event


def notice_event(account: Account, body: dict[str, Any]) -> dict[str, Any]:
    """A notice as the control API describes it (`notice_type` and its fields, given as-is)."""
    return {"time": account.now(), "self_id": account.settings.self_id, "post_type": "notice", **body}


def request_event(account: Account, body: dict[str, Any], flag: str) -> dict[str, Any]:
    """A friend request or a group join request / invitation (event/request.md)."""
    event: dict[str, Any] = {
        "time": account.now(),
        "self_id": account.settings.self_id,
        "post_type": "request",
        "request_type": body["request_type"],
        "user_id": number(str(body["user_id"])),
        "comment": str(body.get("comment", "")),
        "flag": flag,
    }
    if body["request_type"] == "group":
        event["sub_type"] = body["sub_type"]
        event["group_id"] = number(str(body["group_id"]))
    return event


def heartbeat(account: Account, online: bool, interval_s: float) -> dict[str, Any]:
    """A heartbeat meta event: `status` as `get_status` answers, `interval` in ms (event/meta.md)."""
    return {
        "time": account.now(),
        "self_id": account.settings.self_id,
        "post_type": "meta_event",
        "meta_event_type": "heartbeat",
        "status": {"online": online, "good": True},
        "interval": int(interval_s * 1000),
    }


def lifecycle(account: Account) -> dict[str, Any]:
    return {
        "time": account.now(),
        "self_id": account.settings.self_id,
        "post_type": "meta_event",
        "meta_event_type": "lifecycle",
        "sub_type": "connect",
    }


def dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False)


def loads(raw: bytes | str) -> Any:
    return json.loads(raw)


def answer(echo: Any, data: Any = None, retcode: int = 0, message: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"status": "ok" if retcode == 0 else "failed", "retcode": retcode, "data": data}
    if retcode:
        body["message"] = message
        body["wording"] = message
    if echo is not None:
        body["echo"] = echo
    return body
