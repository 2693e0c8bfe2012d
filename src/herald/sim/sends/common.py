"""What every send endpoint shares: the handler's shape and the transcript entry of a send, as
sent, refused or delivered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request

from herald.sim.errors import SimError
from herald.sim.state import Scene, SimState

Reply = tuple[int, Any]
Handler = Callable[[Request, dict[str, Any]], Awaitable[Reply]]


def text_of(body: dict[str, Any]) -> str | None:
    content = body.get("content")
    if isinstance(content, str) and content:
        return content
    markdown = body.get("markdown")
    if isinstance(markdown, dict) and markdown.get("content"):
        return str(markdown["content"])
    return content if isinstance(content, str) else None


def base_url(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', 'localhost')}"


class SendLog:
    """A send's transcript entry: made from its body, then recorded as refused or sent."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    def entry(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "direction": "out",
            "at": self.state.clock.time(),
            "msg_id": body.get("msg_id"),
            "msg_seq": body.get("msg_seq"),
            "event_id": body.get("event_id"),
            "is_wakeup": bool(body.get("is_wakeup")),
            "msg_type": body.get("msg_type"),
            "content": text_of(body),
            **({"keyboard": body["keyboard"]} if body.get("keyboard") is not None else {}),
        }

    def failed(self, scene: Scene, target: str, entry: dict[str, Any], error: SimError) -> None:
        entry["status"], entry["code"], entry["error"] = error.status, error.code, error.message
        self.state.record(scene, target, entry)

    def sent(self, scene: Scene, target: str, entry: dict[str, Any], kind: str, msg_id: str) -> None:
        entry["status"], entry["code"], entry["id"], entry["kind"] = 200, 0, msg_id, kind
        self.state.record(scene, target, entry)
