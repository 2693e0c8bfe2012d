"""C2C and group sends: messages (`/v2/.../messages`), the C2C stream, rich media files and
chunked uploads."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from herald.sim import keyboard as keyboards
from herald.sim import media, rules, stream
from herald.sim.errors import SimError
from herald.sim.sends.common import Reply, SendLog, base_url, text_of
from herald.sim.state import Scene, SimState


class V2Sends:
    """The `/v2/users/...` and `/v2/groups/...` send and upload endpoints."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self.log = SendLog(state)

    async def c2c(self, request: Request, body: dict[str, Any]) -> Reply:
        return self._send_v2("c2c", request.path_params["openid"], body)

    async def group(self, request: Request, body: dict[str, Any]) -> Reply:
        return self._send_v2("group", request.path_params["group_openid"], body)

    def _send_v2(self, scene: Scene, target: str, body: dict[str, Any]) -> Reply:
        state = self.state
        entry = self.log.entry(body)
        try:
            rules.validate_v2_body(state, scene, target, body)
            if body.get("msg_type") == 7:
                entry["media"] = media.described(state, body)
            stream_field = stream.legacy_check(body) if scene == "c2c" else None
            continuing = stream.legacy_continues(state, stream_field)
            plan = rules.plan_v2(state, scene, target, body, new_reply=not continuing)
            if stream_field is not None:
                reply = stream.legacy_chunk(state, target, stream_field, text_of(body) or "")
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
            self.log.failed(scene, target, entry, error)
            raise
        if "ext_info" in reply:
            entry["ref_idx"] = reply["ext_info"]["ref_idx"]
        self.log.sent(scene, target, entry, plan.kind, reply["id"])
        return 200, reply

    async def stream(self, request: Request, body: dict[str, Any]) -> Reply:
        target = request.path_params["openid"]
        entry = self.log.entry(body)
        entry["content"] = body.get("content_raw")
        entry["stream"] = {
            k: body.get(k) for k in ("stream_msg_id", "index", "input_state", "input_mode", "content_type")
        }
        try:
            reply, plan = stream.official_chunk(self.state, target, body)
        except SimError as error:
            self.log.failed("c2c", target, entry, error)
            raise
        # What the user sees of the stream after this chunk, and whether it has ended.
        found = stream.view(self.state, reply["id"])
        assert found is not None
        entry["stream"]["id"] = reply["id"]
        entry["stream"]["text"] = found["content"]
        entry["stream"]["done"] = found["state"] == "done"
        self.log.sent("c2c", target, entry, plan.kind if plan else "stream chunk", reply["id"])
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
            entry = self.log.entry({"msg_type": 7, "content": out.content})
            self.log.sent(scene, target, entry, plan.kind, out.id)
        return 200, reply

    async def c2c_prepare(self, request: Request, body: dict[str, Any]) -> Reply:
        return 200, media.prepare(self.state, "c2c", body, base_url(request))

    async def group_prepare(self, request: Request, body: dict[str, Any]) -> Reply:
        return 200, media.prepare(self.state, "group", body, base_url(request))

    async def c2c_part_finish(self, request: Request, body: dict[str, Any]) -> Reply:
        return 200, media.part_finish(self.state, "c2c", body)

    async def group_part_finish(self, request: Request, body: dict[str, Any]) -> Reply:
        return 200, media.part_finish(self.state, "group", body)
