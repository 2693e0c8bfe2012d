"""The OpenAPI (REST) surface: identity, gateway discovery, sends in four scenes, media, recall.

Every OpenAPI route goes through `Api.route`, which applies, in order: an injected fault
(`fail_next`), the `Authorization` check, the per-endpoint rate limit (§6.8), JSON parsing, and
the request log. Handlers return `(status, body)` or raise `SimError`; `body=None` is an empty body.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from herald.sim import auth, media
from herald.sim.errors import JsonResponse, SimError, error_body
from herald.sim.sends.common import Handler, Reply
from herald.sim.sends.guild import GuildSends
from herald.sim.sends.interactions import Interactions
from herald.sim.sends.recall import Recalls
from herald.sim.sends.v2 import V2Sends
from herald.sim.state import SimState, new_trace_id


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
    if state.quotas.in_window(key, 1.0, now) >= limit:
        raise SimError(50002, status=429)
    state.quotas.charge_window(key, now)


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
    v2, guild = V2Sends(state), GuildSends(state)
    recalls, interactions = Recalls(state), Interactions(state)

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
        r("/v2/users/{openid}/messages", v2.c2c, "POST", "c2c_messages"),
        r("/v2/groups/{group_openid}/messages", v2.group, "POST", "group_messages"),
        Route("/app/getAppAccessToken", token, methods=["POST"]),
        Route("/_sim/cos/{upload_id}/{index:int}", put_part, methods=["PUT"]),
        r("/users/@me", me, "GET"),
        r("/gateway", gateway, "GET"),
        r("/gateway/bot", gateway_bot, "GET"),
        r("/v2/users/{openid}/stream_messages", v2.stream, "POST", "stream"),
        r("/v2/groups/{group_openid}/stream_messages", no_group_stream, "POST"),
        r("/v2/users/{openid}/files", v2.c2c_files, "POST", "files"),
        r("/v2/groups/{group_openid}/files", v2.group_files, "POST", "files"),
        r("/v2/users/{openid}/upload_prepare", v2.c2c_prepare, "POST", "prepare"),
        r("/v2/groups/{group_openid}/upload_prepare", v2.group_prepare, "POST", "prepare"),
        r("/v2/users/{openid}/upload_part_finish", v2.c2c_part_finish, "POST", "part_finish"),
        r("/v2/groups/{group_openid}/upload_part_finish", v2.group_part_finish, "POST", "part_finish"),
        r("/v2/users/{openid}/messages/{message_id}", recalls.c2c, "DELETE", "recall"),
        r("/v2/groups/{group_openid}/messages/{message_id}", recalls.group, "DELETE", "recall"),
        r("/v2/groups/{group_openid}/bot_state", bot_state, "GET"),
        r("/channels/{channel_id}/messages", guild.channel, "POST"),
        r("/channels/{channel_id}/messages/{message_id}", recalls.channel, "DELETE"),
        r("/channels/{channel_id}/messages/{message_id}", guild.channel_get, "GET"),
        r("/dms/{guild_id}/messages", guild.dm, "POST"),
        r("/dms/{guild_id}/messages/{message_id}", recalls.dm, "DELETE"),
        r("/users/@me/dms", guild.create_dm, "POST"),
        r("/interactions/{interaction_id}", interactions.answer, "PUT"),
    ]
