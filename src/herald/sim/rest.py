"""The OpenAPI (REST) surface: identity, gateway discovery, sends in four scenes, media, recall.

Every OpenAPI route goes through `Api.route`, which applies, in order: an injected fault
(`fail_next`), the `Authorization` check, the per-endpoint rate limit (§6.8), JSON parsing, and
the request log. Handlers return `(status, body)` or raise `SimError`; `body=None` is an empty body.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from herald.sim import auth, media, quotas, rules, stream
from herald.sim import keyboard as keyboards
from herald.sim.errors import JsonResponse, SimError, error_body
from herald.sim.state import Outbound, Scene, SimState, new_trace_id

Reply = tuple[int, Any]
Handler = Callable[[Request, dict[str, Any]], Awaitable[Reply]]


def _text(body: dict[str, Any]) -> str | None:
    content = body.get("content")
    if isinstance(content, str) and content:
        return content
    markdown = body.get("markdown")
    if isinstance(markdown, dict) and markdown.get("content"):
        return str(markdown["content"])
    return content if isinstance(content, str) else None


def _base_url(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', 'localhost')}"


class Api:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def route(self, path: str, handler: Handler, method: str, kind: str | None = None) -> Route:
        state = self.state
        has_body = method in ("POST", "PUT", "PATCH")

        async def endpoint(request: Request) -> Response:
            scope_path = request.scope["path"]
            trace_id = new_trace_id()
            try:
                if state.faults:
                    _raise_fault(state)
                auth.authorize(state, request.headers.get("authorization"), scope_path)
                if kind is not None and state.settings.rate_limits:
                    _limit_rate(state, kind)
                body = await _json_body(request) if has_body else {}
                status, payload = await handler(request, body)
            except SimError as error:
                state.log_request(method, scope_path, error.status, error.code)
                return JsonResponse(error_body(error, trace_id), error.status, trace_id)
            state.log_request(method, scope_path, status, None)
            if payload is None:
                return Response(status_code=status, headers={"X-Tps-trace-ID": trace_id})
            return JsonResponse(payload, status, trace_id)

        return Route(path, endpoint, methods=[method])


def _limit_rate(state: SimState, kind: str) -> None:
    """Per-endpoint QPS (§6.8) over a sliding second: HTTP 429 with code 50002."""
    limit = state.settings.endpoint_qps.get(kind)
    if limit is None:
        return
    now = state.clock.time()
    key = ("qps", kind)
    if quotas.in_window(state, key, 1.0, now) >= limit:
        raise SimError(50002, status=429)
    quotas.charge_window(state, key, now)


def _raise_fault(state: SimState) -> None:
    fault = state.faults[0]
    fault.remaining -= 1
    if fault.remaining <= 0:
        state.faults.pop(0)
    raise SimError(fault.code, fault.message, status=fault.status)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/"):
        return await _form_body(request)
    try:
        body = json.loads(raw)
    except ValueError:
        raise SimError(12002, "请求体不是合法的JSON") from None
    if not isinstance(body, dict):
        raise SimError(12002, "请求体必须是JSON对象")
    return body


# Guild sends may be multipart (docs/sim.md): object fields arrive as JSON strings and
# `file_image` as the raw file. v2 endpoints take JSON only.
_FORM_PATHS = ("/channels/", "/dms/")
_FORM_OBJECT_FIELDS = frozenset({"embed", "ark", "message_reference", "markdown", "keyboard"})


async def _form_body(request: Request) -> dict[str, Any]:
    if not request.url.path.startswith(_FORM_PATHS):
        raise SimError(12002, "此接口只接受JSON请求体（multipart/form-data仅用于频道消息）")
    body: dict[str, Any] = {}
    async with request.form() as form:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                if not data:
                    raise SimError(12002, f"{key}为空文件")
                body[key] = f"<{len(data)} bytes {value.filename or ''}>".strip()
            elif key in _FORM_OBJECT_FIELDS:
                try:
                    body[key] = json.loads(value)
                except ValueError:
                    raise SimError(12002, f"{key}必须是JSON字符串") from None
            else:
                body[key] = value
    return body


def routes(state: SimState) -> list[BaseRoute]:
    api = Api(state)
    sends = Sends(state)

    async def token(request: Request) -> Response:
        return await auth.token_endpoint(state, request)

    async def me(request: Request, body: dict[str, Any]) -> Reply:
        s = state.settings
        return 200, {
            "id": s.bot_id,
            "username": s.bot_name,
            "avatar": f"https://thirdqq.qlogo.cn/g?b=oidb&k={s.bot_id}",
            "union_openid": "U_" + s.bot_id,
            "union_user_account": "",
            "share_url": f"https://qun.qq.com/qunpro/robot/share?robot_appid={s.app_id}",
            "welcome_msg": "",
        }

    async def gateway(request: Request, body: dict[str, Any]) -> Reply:
        return 200, {"url": f"ws://{request.headers.get('host', 'localhost')}/websocket/"}

    async def gateway_bot(request: Request, body: dict[str, Any]) -> Reply:
        return 200, {
            "url": f"ws://{request.headers.get('host', 'localhost')}/websocket/",
            "shards": state.settings.gateway_shards,
            "session_start_limit": {
                "total": 1000,
                "remaining": 999,
                "reset_after": 14400000,
                "max_concurrency": state.settings.gateway_max_concurrency,
            },
        }

    async def bot_state(request: Request, body: dict[str, Any]) -> Reply:
        gid = request.path_params["group_openid"]
        return 200, {
            "group_openid": gid,
            "allow_proactive_msg": state.proactive_allowed.get(
                ("group", gid), state.settings.proactive_default_allowed
            ),
        }

    async def no_group_stream(request: Request, body: dict[str, Any]) -> Reply:
        raise SimError(10000, "接口不存在：群消息不支持流式消息", status=404)

    async def put_part(request: Request) -> Response:
        """The presigned URL of a chunk: a plain PUT without auth, as on COS."""
        index = int(request.path_params["index"])
        upload = media.begin_part(state, request.path_params["upload_id"], index)
        data: bytes | None = None
        try:
            if upload is not None:
                data = await request.body()
        finally:
            if upload is not None:
                media.put_part(upload, index, data)
        state.log_request("PUT", request.scope["path"], 200 if upload else 404, None)
        if upload is None:
            return Response(b"NoSuchUpload", status_code=404, media_type="text/plain")
        return Response(status_code=200, headers={"ETag": secrets.token_hex(16)})

    r = api.route
    return [
        r("/v2/users/{openid}/messages", sends.c2c, "POST", "c2c_messages"),
        r("/v2/groups/{group_openid}/messages", sends.group, "POST", "group_messages"),
        Route("/app/getAppAccessToken", token, methods=["POST"]),
        Route("/_sim/cos/{upload_id}/{index:int}", put_part, methods=["PUT"]),
        r("/users/@me", me, "GET"),
        r("/gateway", gateway, "GET"),
        r("/gateway/bot", gateway_bot, "GET"),
        r("/v2/users/{openid}/stream_messages", sends.stream, "POST", "stream"),
        r("/v2/groups/{group_openid}/stream_messages", no_group_stream, "POST"),
        r("/v2/users/{openid}/files", sends.c2c_files, "POST", "files"),
        r("/v2/groups/{group_openid}/files", sends.group_files, "POST", "files"),
        r("/v2/users/{openid}/upload_prepare", sends.c2c_prepare, "POST", "prepare"),
        r("/v2/groups/{group_openid}/upload_prepare", sends.group_prepare, "POST", "prepare"),
        r("/v2/users/{openid}/upload_part_finish", sends.c2c_part_finish, "POST", "part_finish"),
        r("/v2/groups/{group_openid}/upload_part_finish", sends.group_part_finish, "POST", "part_finish"),
        r("/v2/users/{openid}/messages/{message_id}", sends.c2c_recall, "DELETE", "recall"),
        r("/v2/groups/{group_openid}/messages/{message_id}", sends.group_recall, "DELETE", "recall"),
        r("/v2/groups/{group_openid}/bot_state", bot_state, "GET"),
        r("/channels/{channel_id}/messages", sends.channel, "POST"),
        r("/channels/{channel_id}/messages/{message_id}", sends.channel_recall, "DELETE"),
        r("/channels/{channel_id}/messages/{message_id}", sends.channel_get, "GET"),
        r("/dms/{guild_id}/messages", sends.dm, "POST"),
        r("/dms/{guild_id}/messages/{message_id}", sends.dm_recall, "DELETE"),
        r("/users/@me/dms", sends.create_dm, "POST"),
        r("/interactions/{interaction_id}", sends.interaction, "PUT"),
    ]


class Sends:
    """Handlers of the endpoints that send, upload or recall messages."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    # ---- transcript ---------------------------------------------------------------------------

    def _entry(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "direction": "out",
            "at": self.state.clock.time(),
            "msg_id": body.get("msg_id"),
            "msg_seq": body.get("msg_seq"),
            "event_id": body.get("event_id"),
            "is_wakeup": bool(body.get("is_wakeup")),
            "msg_type": body.get("msg_type"),
            "content": _text(body),
            **({"keyboard": body["keyboard"]} if body.get("keyboard") is not None else {}),
        }

    def _failed(self, scene: Scene, target: str, entry: dict[str, Any], error: SimError) -> None:
        entry["status"], entry["code"], entry["error"] = error.status, error.code, error.message
        self.state.record(scene, target, entry)

    def _sent(self, scene: Scene, target: str, entry: dict[str, Any], kind: str, msg_id: str) -> None:
        entry["status"], entry["code"], entry["id"], entry["kind"] = 200, 0, msg_id, kind
        self.state.record(scene, target, entry)

    # ---- v2 sends -------------------------------------------------------------------------------

    async def c2c(self, request: Request, body: dict[str, Any]) -> Reply:
        return self._send_v2("c2c", request.path_params["openid"], body)

    async def group(self, request: Request, body: dict[str, Any]) -> Reply:
        return self._send_v2("group", request.path_params["group_openid"], body)

    def _send_v2(self, scene: Scene, target: str, body: dict[str, Any]) -> Reply:
        state = self.state
        entry = self._entry(body)
        try:
            rules.validate_v2_body(state, scene, target, body)
            if body.get("msg_type") == 7:
                entry["media"] = media.described(state, body)
            stream_field = stream.legacy_check(body) if scene == "c2c" else None
            continuing = stream.legacy_continues(state, stream_field)
            plan = rules.plan_v2(state, scene, target, body, new_reply=not continuing)
            if stream_field is not None:
                reply = stream.legacy_chunk(state, target, stream_field, _text(body) or "")
            else:
                out = state.add_outbound(scene, target, entry["content"])
                if body.get("keyboard") is not None:
                    # Rule 55h: buttons show only under markdown; elsewhere they are dropped.
                    entry["keyboard_shown"] = body.get("msg_type") == 2
                    if entry["keyboard_shown"]:
                        out.keyboard = keyboards.buttons_of(body["keyboard"])
                reply = {
                    "id": out.id,
                    "timestamp": state.clock.rfc3339(out.sent_at),
                    "ext_info": {"ref_idx": out.ref_idx},
                }
            rules.commit(plan)
        except SimError as error:
            self._failed(scene, target, entry, error)
            raise
        if "ext_info" in reply:
            entry["ref_idx"] = reply["ext_info"]["ref_idx"]
        self._sent(scene, target, entry, plan.kind, reply["id"])
        return 200, reply

    async def stream(self, request: Request, body: dict[str, Any]) -> Reply:
        target = request.path_params["openid"]
        entry = self._entry(body)
        entry["content"] = body.get("content_raw")
        entry["stream"] = {
            k: body.get(k) for k in ("stream_msg_id", "index", "input_state", "input_mode", "content_type")
        }
        try:
            reply, plan = stream.official_chunk(self.state, target, body)
        except SimError as error:
            self._failed("c2c", target, entry, error)
            raise
        # What the user sees of the stream after this chunk, and whether it has ended.
        found = stream.view(self.state, reply["id"])
        assert found is not None
        entry["stream"]["id"] = reply["id"]
        entry["stream"]["text"] = found["content"]
        entry["stream"]["done"] = found["state"] == "done"
        self._sent("c2c", target, entry, plan.kind if plan else "stream chunk", reply["id"])
        return 200, reply

    # ---- media ------------------------------------------------------------------------------------

    async def c2c_files(self, request: Request, body: dict[str, Any]) -> Reply:
        return await self._files("c2c", request.path_params["openid"], body)

    async def group_files(self, request: Request, body: dict[str, Any]) -> Reply:
        return await self._files("group", request.path_params["group_openid"], body)

    async def _files(self, scene: Scene, target: str, body: dict[str, Any]) -> Reply:
        state = self.state
        file_type = media.file_type_of(body)
        # Rule 48: `srv_send_msg: true` sends a proactive message and is charged as one.
        plan = rules.plan_proactive_v2(state, scene, target) if body.get("srv_send_msg") else None
        source = await media.source_of(state, scene, body)
        if source.size > media.HARD_LIMIT:
            raise SimError(850031)
        fmt = media.check_format(state, file_type, source)
        record = media.issue(state, scene, file_type, source, str(body.get("file_name") or ""), fmt)
        reply: dict[str, Any] = {
            "file_uuid": record.file_uuid,
            "file_info": record.file_info,
            "ttl": state.settings.file_info_ttl_s,
        }
        if plan is not None:
            rules.commit(plan)
            out = state.add_outbound(scene, target, f"[media file_type={record.file_type}]")
            reply["id"] = out.id
            entry = self._entry({"msg_type": 7, "content": out.content})
            self._sent(scene, target, entry, plan.kind, out.id)
        return 200, reply

    async def c2c_prepare(self, request: Request, body: dict[str, Any]) -> Reply:
        return 200, media.prepare(self.state, "c2c", body, _base_url(request))

    async def group_prepare(self, request: Request, body: dict[str, Any]) -> Reply:
        return 200, media.prepare(self.state, "group", body, _base_url(request))

    async def c2c_part_finish(self, request: Request, body: dict[str, Any]) -> Reply:
        return 200, media.part_finish(self.state, "c2c", body)

    async def group_part_finish(self, request: Request, body: dict[str, Any]) -> Reply:
        return 200, media.part_finish(self.state, "group", body)

    # ---- guild ----------------------------------------------------------------------------------------

    async def channel(self, request: Request, body: dict[str, Any]) -> Reply:
        return self._send_guild("channel", request.path_params["channel_id"], body)

    async def dm(self, request: Request, body: dict[str, Any]) -> Reply:
        return self._send_guild("dm", request.path_params["guild_id"], body)

    def _send_guild(self, scene: Scene, target: str, body: dict[str, Any]) -> Reply:
        state = self.state
        entry = self._entry(body)
        try:
            plan = rules.plan_guild(state, scene, target, body)
            out = state.add_outbound(scene, target, entry["content"])
            message = self._guild_message(scene, target, out)
            state.guild_messages[out.id] = message
            rules.commit(plan)
            if state.settings.audit != "off":
                raise self._hold_for_audit(scene, target, plan, message)
        except SimError as error:
            self._failed(scene, target, entry, error)
            raise
        self._sent(scene, target, entry, plan.kind, out.id)
        return 200, message

    def _guild_message(self, scene: Scene, target: str, out: Outbound) -> dict[str, Any]:
        state = self.state
        state.channel_seq += 1
        s = state.settings
        if scene == "channel":
            guild_id, channel_id = state.channel_guild.get(target, ""), target
        else:
            guild_id = target
            channel_id = state.dm_sessions.get(target, {}).get("channel_id", "")
        message: dict[str, Any] = {
            "id": out.id,
            "channel_id": channel_id,
            "guild_id": guild_id,
            "content": out.content or "",
            "timestamp": state.clock.rfc3339(out.sent_at),
            "edited_timestamp": "",
            "mention_everyone": False,
            "author": {"id": s.bot_id, "username": s.bot_name, "avatar": "", "bot": True},
            "attachments": [],
            "embeds": [],
            "mentions": [],
            "seq": state.channel_seq,
            "seq_in_channel": str(state.channel_seq),
        }
        if scene == "dm":
            message["direct_message"] = True
            message["src_guild_id"] = guild_id
        return message

    def _hold_for_audit(
        self, scene: Scene, target: str, plan: rules.Plan, message: dict[str, Any]
    ) -> SimError:
        """Rule 78: answer 202 with the audit body, then publish the verdict after `audit_delay_s`."""
        state = self.state
        audit_id = secrets.token_hex(12)
        verdict = state.settings.audit
        d: dict[str, Any] = {
            "audit_id": audit_id,
            "guild_id": message["guild_id"],
            "channel_id": message["channel_id"],
            "audit_time": state.clock.rfc3339(),
            "create_time": message["timestamp"],
            "seq_in_channel": message["seq_in_channel"],
        }
        if verdict == "pass":
            d["message_id"] = message["id"]
        t = "MESSAGE_AUDIT_PASS" if verdict == "pass" else "MESSAGE_AUDIT_REJECT"
        asyncio.get_running_loop().call_later(state.settings.audit_delay_s, lambda: state.inject_event(t, d))
        code = 304023 if plan.kind == "proactive" else 304024
        return SimError(code, status=202, data={"message_audit": {"audit_id": audit_id}})

    async def create_dm(self, request: Request, body: dict[str, Any]) -> Reply:
        recipient = body.get("recipient_id")
        source = body.get("source_guild_id")
        if not recipient or not source:
            raise SimError(12002, "recipient_id和source_guild_id必填")
        guild_id = "dm" + hashlib.sha1(f"{recipient}/{source}".encode()).hexdigest()[:16]
        session = self.state.dm_sessions.setdefault(
            guild_id, {"recipient_id": str(recipient), "channel_id": f"dmc-{guild_id}"}
        )
        session["source_guild_id"] = str(source)
        return 200, {
            "guild_id": guild_id,
            "channel_id": session["channel_id"],
            "create_time": str(int(self.state.clock.time())),
        }

    # ---- recall and interactions ------------------------------------------------------------------------

    async def c2c_recall(self, request: Request, body: dict[str, Any]) -> Reply:
        return self._recall_v2("c2c", request.path_params["openid"], request.path_params["message_id"])

    async def group_recall(self, request: Request, body: dict[str, Any]) -> Reply:
        return self._recall_v2(
            "group", request.path_params["group_openid"], request.path_params["message_id"]
        )

    def _recall_v2(self, scene: Scene, target: str, message_id: str) -> Reply:
        """Rule 76: the bot's own message within 120 s; a member's group message only as admin."""
        state = self.state
        out = state.outbound.get(message_id)
        if out is not None and out.scene == scene and out.target == target:
            sent_at = out.sent_at
        else:
            anchor = state.anchors.get(message_id)
            if scene != "group" or anchor is None or anchor.scene != scene or anchor.target != target:
                raise SimError(40061002)
            if not state.settings.bot_is_group_admin:
                raise SimError(40062003)
            sent_at = anchor.received_at
        if state.clock.time() - sent_at > state.settings.recall_window_s:
            raise SimError(40064004)
        state.record(
            scene, target, {"direction": "out", "at": state.clock.time(), "recall": message_id, "status": 200}
        )
        return 200, None

    async def channel_recall(self, request: Request, body: dict[str, Any]) -> Reply:
        return self._recall_guild(
            "channel", request.path_params["channel_id"], request.path_params["message_id"]
        )

    async def dm_recall(self, request: Request, body: dict[str, Any]) -> Reply:
        return self._recall_guild("dm", request.path_params["guild_id"], request.path_params["message_id"])

    def _recall_guild(self, scene: Scene, target: str, message_id: str) -> Reply:
        state = self.state
        known = state.outbound.get(message_id) or state.anchors.get(message_id)
        if known is None or known.scene != scene or known.target != target:
            raise SimError(306004)
        state.record(
            scene, target, {"direction": "out", "at": state.clock.time(), "recall": message_id, "status": 200}
        )
        return 200, None

    async def channel_get(self, request: Request, body: dict[str, Any]) -> Reply:
        message = self.state.guild_messages.get(request.path_params["message_id"])
        if message is None or message["channel_id"] != request.path_params["channel_id"]:
            raise SimError(306004)
        return 200, {"message": message}

    async def interaction(self, request: Request, body: dict[str, Any]) -> Reply:
        """Rule 77: answer a known interaction once with a code in 0..5 -> 204."""
        interaction_id = request.path_params["interaction_id"]
        code = body.get("code")
        if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 5:
            raise SimError(12002, f"code必须是0到5之间的整数，收到{code!r}")
        if interaction_id not in self.state.interactions:
            raise SimError(630001)
        if self.state.interactions[interaction_id] is not None:
            raise SimError(630002)
        self.state.interactions[interaction_id] = str(code)
        click = self.state.clicks.get(interaction_id)
        if click is not None:
            click["code"] = code
            self.state.record(
                click["scene"],
                click["target"],
                {
                    "direction": "out",
                    "at": self.state.clock.time(),
                    "ack": interaction_id,
                    "code": code,
                    "status": 204,
                },
            )
        return 204, None
