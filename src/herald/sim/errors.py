"""Error codes, their Chinese messages, and the exact response shape the platform sends.

Every OpenAPI error is `{"message", "code", "err_code", "trace_id"}` with the trace id also in the
`X-Tps-trace-ID` header (docs/sim.md). `Content-Type` is exactly `application/json`:
botpy compares the header string and treats anything else (such as a charset suffix) as text.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from herald.sim import wire
from herald.sim.state import new_trace_id

# Messages as the platform writes them where known (the 2026 wiki's error tables, see
# docs/qq-platform.md §7); the rest are the documented meaning in the platform's style.
MESSAGES: dict[int, str] = {
    10004: "bot not exist",
    11241: "token not exist",
    11242: "check token failed",
    11243: "token error",
    11244: "token expire or not exist",
    11262: "api not allowed to call with bot token",
    12002: "请求参数错误",
    20028: "子频道消息发送频率超过限制",
    22006: "消息类型与内容不匹配",
    22009: "msg limit exceed",
    40007: "已经提交的消息内容不可修改",  # as observed (LangBot #2454)
    40034005: "回复消息msg_id已过期",
    40034024: "请求参数msg_id无效或越权",
    40034025: "请求参数event_id无效",
    40034026: "请求参数event_id已过期",
    40034027: "该事件不支持回复消息",
    40034029: "消息按钮组件行数或列数超过限制",
    40034100: "主动消息发送超过频控限制",
    40034102: "主动消息发送失败，无权限",
    40034105: "主动消息发送失败，无权限",
    40034122: "互动召回消息已达到当前周期上限",
    40034123: "不支持互动召回消息",
    40034124: "markdown消息参数错误",
    40034127: "没有markdown模板权限",
    40034128: "被动回复时间或次数超限",
    40054005: "消息被去重，请检查请求msgseq",
    40054007: "消息过长",
    40054010: "消息中不允许包含url",
    40054013: "用户拒收消息",
    40061001: "参数无效",
    40061002: "消息id无效",
    40062003: "没有权限撤回该消息",
    40064004: "消息撤回超过时间限制",
    40093001: "文件上传失败，请重试",
    40093002: "文件上传量超过每日限额",
    50002: "请求频率超过限制",
    50006: "消息为空",
    50037: "markdown只能与keyboard组合发送",
    50045: "不能回复机器人自己产生的消息",
    50055001: "消息发送失败，请稍后重试",
    50057: "原生markdown与模板markdown不能同时使用",
    50059: "输入状态参数错误",
    304018: "机器人未连接网关，SESSION_NOT_EXIST",
    304022: "推送消息时间限制",
    304023: "push message is waiting for audit now",
    304024: "reply message is waiting for audit now",
    304026: "回复的消息ID错误",
    304027: "回复的消息已过期",
    304036: "没有markdown模板权限",
    304045: "子频道主动消息数量超过限制",
    304047: "主动推送子频道数量超过限制",
    304049: "私信主动消息数量超过限制",
    304050: "私信主动消息总数超过限制",
    304080: "file_info无效",
    306004: "消息不存在",
    340069: "消息类型无效",
    630001: "互动事件不存在",
    630002: "互动事件已回应",
    850019: "不支持的文件格式",
    850026: "文件下载失败",
    850031: "文件大小超过限制",
}


class SimError(Exception):
    """A platform error answer; `message` defaults to the platform's text for `code`."""

    def __init__(
        self,
        code: int,
        message: str | None = None,
        *,
        status: int = 400,
        data: Any = None,
        err_code: int | None = None,
    ) -> None:
        self.code = code
        # The platform's second code; most answers repeat `code`, a few name a finer one.
        self.err_code = code if err_code is None else err_code
        self.status = status
        self.message = message if message is not None else MESSAGES.get(code, f"error {code}")
        self.data = data
        super().__init__(f"{code} {self.message}")


class JsonResponse(Response):
    """A JSON response with `Content-Type: application/json` exactly and non-ASCII kept as UTF-8."""

    media_type = "application/json"

    def __init__(self, content: Any, status_code: int = 200, trace_id: str | None = None) -> None:
        super().__init__(
            content=_dumps(content),
            status_code=status_code,
            headers={"X-Tps-trace-ID": trace_id or new_trace_id()},
        )

    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else _dumps(content)


def _dumps(content: Any) -> bytes:
    return wire.encode(content)


def error_body(error: SimError, trace_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message": error.message,
        "code": error.code,
        "err_code": error.err_code,
        "trace_id": trace_id,
    }
    if error.data is not None:
        body["data"] = error.data
    return body


def error_response(error: SimError) -> JsonResponse:
    trace_id = new_trace_id()
    return JsonResponse(error_body(error, trace_id), status_code=error.status, trace_id=trace_id)
