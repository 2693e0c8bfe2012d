"""The actions the emulated implementation answers, one dispatcher for every transport (reverse
and forward WebSocket, HTTP API, HTTP POST quick operations). docs/sim.md lists them and their
sources."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from herald.sim.onebot import wire
from herald.sim.onebot.account import Account, ChatType, Message, Sent

log = logging.getLogger(__name__)

SEND_ACTIONS: dict[str, ChatType] = {"send_private_msg": "private", "send_group_msg": "group"}
# The answer of an action, without its `echo`: `status`, `retcode`, `data` (and `message` on failure).
Answer = dict[str, Any]
Handler = Callable[[dict[str, Any]], Awaitable[Answer]]


def _failed(retcode: int, message: str) -> Answer:
    return wire.answer(None, retcode=retcode, message=message)


def _ok(data: Any = None) -> Answer:
    return wire.answer(None, data)


def _int(params: dict[str, Any], key: str) -> int | None:
    """A numeric parameter, given as a number or (HTTP query, form) as a string."""
    value = params.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def _flag(value: Any) -> bool:
    return value in (True, "true", "True", "1", 1)


class Actions:
    def __init__(self, account: Account, online: Callable[[], bool]) -> None:
        self.account = account
        self.online = online
        self._handlers: dict[str, Handler] = {
            "send_private_msg": self._send_private,
            "send_group_msg": self._send_group,
            "send_msg": self._send_msg,
            "delete_msg": self._delete_msg,
            "get_msg": self._get_msg,
            "set_friend_add_request": self._friend_request,
            "set_group_add_request": self._group_request,
            "get_login_info": self._login_info,
            "get_stranger_info": self._stranger_info,
            "get_friend_list": self._friend_list,
            "get_group_info": self._group_info,
            "get_group_list": self._group_list,
            "get_group_member_info": self._member_info,
            "can_send_image": self._yes,
            "can_send_record": self._yes,
            "get_status": self._status,
            # api/hidden.md: what a WebSocket client sends for the quick operation an HTTP POST
            # answer would carry.
            ".handle_quick_operation": self._quick,
            ".handle_quick_operation_async": self._quick,
            "get_version_info": self._version,
        }

    def knows(self, action: str) -> bool:
        return action in self._handlers

    async def run(self, action: str, params: dict[str, Any], via: str) -> Answer:
        """Run one action (after any fault the control API set for it) and log it with `via`,
        the transport it came by."""
        account = self.account
        fault = account.take_fault(action)
        if fault is not None and fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        handler = self._handlers.get(action)
        if handler is None:
            answer = _failed(1404, f"action {action!r} is not supported")
        elif fault is not None and fault.retcode:
            answer = await self._refused(action, params, fault.retcode)
        else:
            answer = await handler(params)
        account.actions.append({"action": action, "params": params, "retcode": answer["retcode"], "via": via})
        return answer

    async def _refused(self, action: str, params: dict[str, Any], retcode: int) -> Answer:
        # A refused send is still in the transcript, as failed: what the bot asked for is visible.
        chat = SEND_ACTIONS.get(action) or (
            ("group" if params.get("message_type") == "group" or "group_id" in params else "private")
            if action == "send_msg"
            else None
        )
        if chat is not None:
            key = "group_id" if chat == "group" else "user_id"
            try:
                parts = wire.segments(params.get("message", ""), _flag(params.get("auto_escape")))
            except ValueError:
                parts = []
            self.account.transcript.append(
                Sent(action, chat, str(params.get(key, "")), parts, "failed", retcode, None)
            )
        return _failed(retcode, "fault set by the control API")

    # --- messages ------------------------------------------------------------------------------

    def send(self, action: str, chat: ChatType, chat_id: str, parts: list[dict[str, Any]]) -> int:
        """Record a message the account sends; its new message id."""
        account = self.account
        message_id = account.new_message_id()
        account.transcript.append(Sent(action, chat, chat_id, parts, "ok", 0, message_id))
        sender = {"user_id": account.settings.self_id, "nickname": "herald-sim", "sex": "unknown", "age": 0}
        account.messages[message_id] = Message(chat, chat_id, sender, parts, account.now())
        return message_id

    async def _send(self, action: str, chat: ChatType, params: dict[str, Any]) -> Answer:
        key = "group_id" if chat == "group" else "user_id"
        if key not in params:
            return _failed(1400, f"{key} is missing")
        try:
            parts = wire.segments(params.get("message", ""), _flag(params.get("auto_escape")))
        except ValueError as exc:
            return _failed(1400, str(exc))
        return _ok({"message_id": self.send(action, chat, str(params[key]), parts)})

    async def _send_private(self, params: dict[str, Any]) -> Answer:
        return await self._send("send_private_msg", "private", params)

    async def _send_group(self, params: dict[str, Any]) -> Answer:
        return await self._send("send_group_msg", "group", params)

    async def _send_msg(self, params: dict[str, Any]) -> Answer:
        group = params.get("message_type") == "group" or (
            "group_id" in params and params.get("message_type") != "private"
        )
        # Recorded as the action it stands for, as implementations route it.
        if group:
            return await self._send("send_group_msg", "group", params)
        return await self._send("send_private_msg", "private", params)

    async def _delete_msg(self, params: dict[str, Any]) -> Answer:
        message_id = _int(params, "message_id")
        if message_id is None or message_id not in self.account.messages:
            return _failed(100, f"message {params.get('message_id')!r} not found")
        for sent in self.account.transcript:
            if sent.message_id == message_id:
                sent.recalled = True
        return _ok()

    async def _get_msg(self, params: dict[str, Any]) -> Answer:
        message_id = _int(params, "message_id")
        message = self.account.messages.get(message_id) if message_id is not None else None
        if message is None:
            return _failed(100, f"message {params.get('message_id')!r} not found")
        return _ok(
            {
                "time": message.time,
                "message_type": message.chat,
                "message_id": message_id,
                "real_id": message_id,
                "sender": message.sender,
                "message": message.message
                if self.account.settings.message_format == "array"
                else wire.cq_string(message.message),
            }
        )

    # --- requests ------------------------------------------------------------------------------

    def answer_request(self, flag: str, approve: bool, by: str, remark: str = "", reason: str = "") -> bool:
        request = self.account.requests.get(flag)
        if request is None:
            return False
        request.approve, request.answered_by = approve, by
        request.remark, request.reason = (remark, "") if approve else ("", reason)
        if approve and request.request_type == "friend":
            self.account.friends.setdefault(request.user_id, f"user{request.user_id}")
        if approve and request.sub_type == "invite":
            self.account.groups.setdefault(request.group_id, {})
        return True

    async def _friend_request(self, params: dict[str, Any]) -> Answer:
        flag = str(params.get("flag", ""))
        approve = _flag(params.get("approve", True))
        if not self.answer_request(
            flag, approve, "set_friend_add_request", remark=str(params.get("remark", ""))
        ):
            return _failed(100, f"no friend request with flag {flag!r}")
        return _ok()

    async def _group_request(self, params: dict[str, Any]) -> Answer:
        flag = str(params.get("flag", ""))
        request = self.account.requests.get(flag)
        kind = params.get("sub_type", params.get("type"))
        if request is None or request.request_type != "group":
            return _failed(100, f"no group request with flag {flag!r}")
        if kind != request.sub_type:
            return _failed(1400, f"sub_type {kind!r} does not match the request's {request.sub_type!r}")
        approve = _flag(params.get("approve", True))
        self.answer_request(flag, approve, "set_group_add_request", reason=str(params.get("reason", "")))
        return _ok()

    # --- quick operations ----------------------------------------------------------------------

    def quick_operation(self, event: dict[str, Any], operation: dict[str, Any]) -> None:
        """The quick operations of event/message.md and event/request.md, every field optional:
        `reply` (with `auto_escape`, and `at_sender` in groups) and a request's `approve` are done;
        `delete`, `kick` and `ban` are only logged (the action log shows the operation)."""
        post = event.get("post_type")
        if post == "message" and operation.get("reply") is not None:
            group = event.get("message_type") == "group"
            parts = wire.segments(operation["reply"], _flag(operation.get("auto_escape")))
            if group and operation.get("at_sender", True):
                at = {"type": "at", "data": {"qq": str(event.get("user_id", ""))}}
                parts = [at, {"type": "text", "data": {"text": " "}}, *parts]
            chat_id = str(event.get("group_id") if group else event.get("user_id"))
            self.send(".handle_quick_operation", "group" if group else "private", chat_id, parts)
        if post == "request" and "approve" in operation:
            self.answer_request(
                str(event.get("flag", "")),
                _flag(operation["approve"]),
                "quick operation",
                remark=str(operation.get("remark", "")),
                reason=str(operation.get("reason", "")),
            )

    async def _quick(self, params: dict[str, Any]) -> Answer:
        context, operation = params.get("context"), params.get("operation")
        if not isinstance(context, dict) or not isinstance(operation, dict):
            return _failed(1400, "give context (the event) and operation (objects)")
        self.quick_operation(context, operation)
        return _ok()

    # --- who is who ----------------------------------------------------------------------------

    async def _login_info(self, params: dict[str, Any]) -> Answer:
        return _ok({"user_id": self.account.settings.self_id, "nickname": "herald-sim"})

    async def _stranger_info(self, params: dict[str, Any]) -> Answer:
        user = _int(params, "user_id")
        if user is None:
            return _failed(1400, "user_id is missing")
        nickname = self.account.friends.get(str(user), f"user{user}")
        return _ok({"user_id": user, "nickname": nickname, "sex": "unknown", "age": 0})

    async def _friend_list(self, params: dict[str, Any]) -> Answer:
        return _ok(
            [
                {"user_id": wire.number(user), "nickname": name, "remark": ""}
                for user, name in self.account.friends.items()
            ]
        )

    def _group(self, group: str) -> dict[str, Any]:
        members = self.account.groups.get(group, {})
        return {
            "group_id": wire.number(group),
            "group_name": f"group{group}",
            "member_count": len(members) + 1,
            "max_member_count": 500,
        }

    async def _group_info(self, params: dict[str, Any]) -> Answer:
        group = _int(params, "group_id")
        if group is None or str(group) not in self.account.groups:
            return _failed(100, f"the account is not in group {params.get('group_id')!r}")
        return _ok(self._group(str(group)))

    async def _group_list(self, params: dict[str, Any]) -> Answer:
        return _ok([self._group(group) for group in self.account.groups])

    async def _member_info(self, params: dict[str, Any]) -> Answer:
        group, user = _int(params, "group_id"), _int(params, "user_id")
        members = self.account.groups.get(str(group), {})
        if group is None or user is None or str(user) not in members:
            return _failed(100, f"no member {params.get('user_id')!r} in group {params.get('group_id')!r}")
        return _ok(
            {
                "group_id": group,
                "user_id": user,
                "nickname": f"user{user}",
                "card": "",
                "sex": "unknown",
                "age": 0,
                "area": "",
                "join_time": 0,
                "last_sent_time": 0,
                "level": "",
                "role": members[str(user)],
                "unfriendly": False,
                "title": "",
            }
        )

    async def _yes(self, params: dict[str, Any]) -> Answer:
        return _ok({"yes": True})

    async def _status(self, params: dict[str, Any]) -> Answer:
        return _ok({"online": self.online(), "good": True})

    async def _version(self, params: dict[str, Any]) -> Answer:
        return _ok({"app_name": "herald-sim", "app_version": "0.1", "protocol_version": "v11"})
