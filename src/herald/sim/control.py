"""The control API under `/_sim/` (no QQ auth): inject traffic, move the clock, read what happened,
inject faults, change settings. Documented in docs/sim.md.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from herald.sim import events, keyboard, stream
from herald.sim.errors import JsonResponse
from herald.sim.inject import Injector
from herald.sim.settings import SimSettings
from herald.sim.state import NOTICE_LEVELS, SCENES, Fault, SimState
from herald.sim.stores.media import Served

Handler = Callable[[Request, dict[str, Any]], Awaitable[Any]]


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _str(body: dict[str, Any], key: str, default: str | None = None) -> str:
    value = body.get(key, default)
    if not isinstance(value, str) or (not value and default is None):
        raise BadRequest(f"field {key!r} is required and must be a non-empty string")
    return value


def _optional_str(body: dict[str, Any], key: str, default: str | None) -> str | None:
    """`key` when given (null leaves the field out of the payload), else `default`."""
    value = body.get(key, default)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"field {key!r} must be a string or null")
    return value


def routes(state: SimState) -> list[BaseRoute]:
    inject = Injector(state)

    def route(path: str, handler: Handler, method: str) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                body: dict[str, Any] = {}
                if method in ("POST", "PUT"):
                    raw = await request.body()
                    parsed = json.loads(raw) if raw else {}
                    if not isinstance(parsed, dict):
                        raise BadRequest("the body must be a JSON object")
                    body = parsed
                result = await handler(request, body)
            except BadRequest as error:
                return JsonResponse({"error": str(error)}, error.status)
            except ValueError as error:
                return JsonResponse({"error": f"invalid JSON: {error}"}, 400)
            return JsonResponse(result)

        return Route(path, endpoint, methods=[method])

    def injected(result: Any) -> dict[str, str]:
        return {"msg_id": result.msg_id, "event_id": result.event_id, "ref_idx": result.ref_idx}

    async def c2c_message(request: Request, body: dict[str, Any]) -> Any:
        attachments = body.get("attachments")
        quote = body.get("quote") or None
        return injected(
            inject.c2c(
                request.path_params["user_openid"], _str(body, "content", ""), attachments, quote=quote
            )
        )

    async def group_message(request: Request, body: dict[str, Any]) -> Any:
        return injected(
            inject.group(
                request.path_params["group_openid"],
                _str(body, "member_openid"),
                _str(body, "content", ""),
                at_bot=bool(body.get("at_bot", True)),
                attachments=body.get("attachments"),
                quote=body.get("quote") or None,
                member_role=_optional_str(body, "member_role", "member"),
                username=_optional_str(body, "username", None),
            )
        )

    async def channel_message(request: Request, body: dict[str, Any]) -> Any:
        return injected(
            inject.channel(
                request.path_params["channel_id"],
                _str(body, "guild_id"),
                _str(body, "author_id"),
                _str(body, "content", ""),
                at_bot=bool(body.get("at_bot", True)),
            )
        )

    async def dm_message(request: Request, body: dict[str, Any]) -> Any:
        return injected(
            inject.dm(request.path_params["guild_id"], _str(body, "author_id"), _str(body, "content", ""))
        )

    async def event(request: Request, body: dict[str, Any]) -> Any:
        t = _str(body, "t")
        fields = body.get("fields")
        if fields is not None:
            if "d" in body:
                raise BadRequest("give either 'd' (the whole payload) or 'fields' (the emulator builds it)")
            if not isinstance(fields, dict):
                raise BadRequest("field 'fields' must be an object")
            try:
                d = events.shape(state, t, fields)
            except events.ShapeError as error:
                raise BadRequest(str(error)) from None
        else:
            d = body.get("d", {})
        dispatch = inject.event(t, d)
        return {"event_id": dispatch.id, "t": t, "d": d}

    async def click(request: Request, body: dict[str, Any]) -> Any:
        """A user clicks a button of a message the bot sent: INTERACTION_CREATE, as the platform
        pushes it (docs/sim.md, rules 55i-55k)."""
        user = body.get("user")
        role = body.get("member_role")
        try:
            interaction_id, d = keyboard.click(
                state,
                _str(body, "message_id"),
                _str(body, "button_id"),
                str(user) if user else None,
                str(role) if role else None,
            )
        except keyboard.ClickRefused as refused:
            raise BadRequest(str(refused)) from None
        dispatch = inject.event("INTERACTION_CREATE", d)
        return {"interaction_id": interaction_id, "event_id": dispatch.id}

    async def interaction_get(request: Request, body: dict[str, Any]) -> Any:
        interaction_id = request.path_params["interaction_id"]
        if interaction_id not in state.interactions:
            raise BadRequest(f"no interaction {interaction_id!r}", status=404)
        answered = state.interactions[interaction_id]
        return {
            **state.clicks.get(interaction_id, {}),
            "id": interaction_id,
            "code": int(answered) if answered is not None else None,
        }

    async def clock_get(request: Request, body: dict[str, Any]) -> Any:
        return {"time": state.clock.time(), "offset": state.clock.offset, "now": state.clock.rfc3339()}

    async def clock_advance(request: Request, body: dict[str, Any]) -> Any:
        seconds = body.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise BadRequest("field 'seconds' must be a non-negative number")
        state.clock.advance(float(seconds))
        return await clock_get(request, body)

    async def transcript(request: Request, body: dict[str, Any]) -> Any:
        scene = request.query_params.get("scene", "")
        target = request.query_params.get("target", "")
        if scene not in SCENES or not target:
            raise BadRequest(f"query needs scene (one of {', '.join(SCENES)}) and target")
        return {
            "scene": scene,
            "target": target,
            "entries": state.transcripts.conversations.get((scene, target), []),
        }

    async def conversations(request: Request, body: dict[str, Any]) -> Any:
        items = sorted(state.transcripts.last_activity.items(), key=lambda item: item[1], reverse=True)
        return {
            "conversations": [
                {
                    "scene": scene,
                    "target": target,
                    "last_activity": at,
                    "entries": len(state.transcripts.conversations.get((scene, target), [])),
                }
                for (scene, target), at in items
            ]
        }

    async def requests(request: Request, body: dict[str, Any]) -> Any:
        since_text = request.query_params.get("since", "0")
        try:
            since = int(since_text)
        except ValueError:
            raise BadRequest(f"since must be an integer, got {since_text!r}") from None
        return {
            "total": state.requests.count,
            "requests": [r for r in state.requests.entries if r["n"] > since],
        }

    async def clear_requests(request: Request, body: dict[str, Any]) -> Any:
        state.requests.entries.clear()
        return {"cleared": True}

    async def faults(request: Request, body: dict[str, Any]) -> Any:
        kind = body.get("kind")
        if kind == "close":
            code = body.get("code", 4009)
            if not isinstance(code, int):
                raise BadRequest("field 'code' must be an integer close code")
            return {"kind": kind, "closed": await state.bus.close_sessions(code)}
        if kind == "reconnect":
            return {"kind": kind, "sessions": await state.bus.request_reconnect()}
        if kind == "fail_next":
            count, status, code = body.get("count", 1), body.get("status", 500), body.get("code", 50055001)
            if (
                not all(isinstance(v, int) and not isinstance(v, bool) for v in (count, status, code))
                or count < 1
            ):
                raise BadRequest("fail_next needs integer count >= 1, status and code")
            from herald.sim.errors import MESSAGES

            message = body.get("message") or MESSAGES.get(code, f"error {code}")
            state.faults.append(Fault(remaining=count, status=status, code=code, message=str(message)))
            return {"kind": kind, "pending": sum(f.remaining for f in state.faults)}
        if kind == "clear":  # an outage made of fail_next ends now
            cleared = sum(f.remaining for f in state.faults)
            state.faults.clear()
            return {"kind": kind, "cleared": cleared}
        if kind == "expire_tokens":
            return {"kind": kind, "expired": state.tokens.expire(state.clock.time())}
        if kind == "redeliver_last":
            dispatch = state.bus.redeliver_last()
            return {"kind": kind, "event_id": dispatch.id if dispatch else None}
        if kind == "upload_part_fail":
            count = body.get("count", 1)
            if not isinstance(count, int) or count < 1:
                raise BadRequest("upload_part_fail needs integer count >= 1")
            state.media.part_failures += count
            return {"kind": kind, "pending": state.media.part_failures}
        raise BadRequest(
            f"unknown fault kind {kind!r}; expected close, reconnect, fail_next, clear, expire_tokens, "
            "redeliver_last or upload_part_fail"
        )

    async def settings_get(request: Request, body: dict[str, Any]) -> Any:
        return state.settings.model_dump(mode="json")

    async def settings_put(request: Request, body: dict[str, Any]) -> Any:
        unknown = sorted(set(body) - set(SimSettings.model_fields))
        if unknown:
            raise BadRequest(f"unknown setting(s): {', '.join(unknown)}")
        try:
            merged = SimSettings.model_validate({**state.settings.model_dump(), **body})
        except ValidationError as error:
            raise BadRequest(f"invalid setting: {error.errors(include_url=False)}") from None
        for key in body:
            setattr(state.settings, key, getattr(merged, key))
        return state.settings.model_dump(mode="json")

    async def reset(request: Request, body: dict[str, Any]) -> Any:
        state.reset()
        return {"reset": True}

    async def stream_view(request: Request, body: dict[str, Any]) -> Any:
        found = stream.view(state, request.path_params["stream_id"])
        if found is None:
            raise BadRequest(f"no stream {request.path_params['stream_id']!r}", status=404)
        return found

    async def notices(request: Request, body: dict[str, Any]) -> Any:
        return {"notices": sorted(state.notices.values(), key=lambda notice: notice["source"])}

    async def notice_put(request: Request, body: dict[str, Any]) -> Any:
        level = body.get("level", "info")
        if level not in NOTICE_LEVELS:
            raise BadRequest(f"field 'level' must be one of {', '.join(NOTICE_LEVELS)}, got {level!r}")
        return state.set_notice(request.path_params["source"], _str(body, "text"), level)

    async def notice_delete(request: Request, body: dict[str, Any]) -> Any:
        return {"deleted": state.notices.pop(request.path_params["source"], None) is not None}

    async def attachment_put(request: Request, body: dict[str, Any]) -> Any:
        """Bytes a user's message can carry as an attachment: what the platform's media host
        would serve at the attachment's `url` (`redirect`: answer 302 to that URL instead)."""
        try:
            data = base64.b64decode(_str(body, "data_base64", ""), validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("data_base64 must be base64") from None
        attachment_id = secrets.token_hex(8)
        redirect = body.get("redirect")
        state.media.attachments[attachment_id] = Served(data, _str(body, "content_type"), redirect or None)
        return {"url": f"{request.base_url}_sim/attachments/{attachment_id}", "size": len(data)}

    async def attachment_get(request: Request) -> Response:
        found = state.media.attachments.get(request.path_params["attachment_id"])
        if found is None:
            return JsonResponse({"error": "no such attachment"}, 404)
        if found.redirect:
            return Response(status_code=302, headers={"location": found.redirect})
        return Response(found.data, media_type=found.content_type)

    return [
        route("/_sim/c2c/{user_openid}/messages", c2c_message, "POST"),
        route("/_sim/groups/{group_openid}/messages", group_message, "POST"),
        route("/_sim/channels/{channel_id}/messages", channel_message, "POST"),
        route("/_sim/dms/{guild_id}/messages", dm_message, "POST"),
        route("/_sim/events", event, "POST"),
        route("/_sim/interactions", click, "POST"),
        route("/_sim/interactions/{interaction_id}", interaction_get, "GET"),
        route("/_sim/clock", clock_get, "GET"),
        route("/_sim/clock/advance", clock_advance, "POST"),
        route("/_sim/transcript", transcript, "GET"),
        route("/_sim/conversations", conversations, "GET"),
        route("/_sim/requests", requests, "GET"),
        route("/_sim/requests", clear_requests, "DELETE"),
        route("/_sim/faults", faults, "POST"),
        route("/_sim/settings", settings_get, "GET"),
        route("/_sim/settings", settings_put, "PUT"),
        route("/_sim/reset", reset, "POST"),
        route("/_sim/streams/{stream_id}", stream_view, "GET"),
        route("/_sim/notices", notices, "GET"),
        route("/_sim/notices/{source}", notice_put, "PUT"),
        route("/_sim/notices/{source}", notice_delete, "DELETE"),
        route("/_sim/attachments", attachment_put, "POST"),
        Route("/_sim/attachments/{attachment_id}", attachment_get, methods=["GET"]),
    ]
