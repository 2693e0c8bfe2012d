"""The conversation pages: every conversation, newest first; one conversation's turns (model steps,
tool calls, deliveries) under its reply ledger; and `/live`, the server-sent events that keep
them current."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from herald.console.base import Page
from herald.console.conversations import conversation, recent_conversations
from herald.core.target import Target


def _short(anchor_id: str) -> str:
    """Platform ids run to 60 characters; their head and tail tell them apart on a page."""
    return anchor_id if len(anchor_id) <= 16 else f"{anchor_id[:8]}…{anchor_id[-6:]}"


def _time_left(seconds: float) -> str:
    """mm:ss (minutes may pass 59 for a long window); never negative."""
    whole = max(0, int(seconds))
    return f"{whole // 60:02d}:{whole % 60:02d}"


class ConversationPages(Page):
    async def conversations(self, request: Request) -> Response:
        found = await recent_conversations(self.ops.db)
        return self.render(
            request,
            "conversations.html",
            title="conversations",
            conversations=found,
            when=self._when,
            live="",
        )

    async def conversation(self, request: Request) -> Response:
        key = request.path_params["key"]
        turns = await conversation(self.ops.db, key)
        ledger = await self._ledger(key)
        return self.render(
            request,
            "conversation.html",
            title=key,
            key=key,
            turns=turns,
            ledger=ledger,
            when=self._when,
            live=key,
        )

    async def _ledger(self, key: str) -> dict[str, Any] | None:
        """The reply ledger panel's values: times left on the console's clock, ids shortened."""
        if self.ops.reach is None:
            return None
        try:
            target = Target.parse(key)
        except ValueError:
            return None
        reach = await self.ops.reach(target)
        now = self.ops.clock.now()
        anchors = [
            {
                "id": anchor.id,
                "short": _short(anchor.id),
                "kind": anchor.kind,
                "left": _time_left((anchor.usable_until - now).total_seconds()),
                "replies_left": anchor.replies_left,
            }
            for anchor in reach.anchors
        ]
        chosen = next((a for a in anchors if a["id"] == reach.next_send.anchor_id), None)
        proactive = reach.proactive
        quota_left = None
        if proactive.used is not None and proactive.limit is not None:
            quota_left = max(0, proactive.limit - proactive.used)
        return {
            "anchors": anchors,
            "proactive": proactive,
            "quota_left": quota_left,
            "next_allowed": self._when(proactive.next_allowed_at) if proactive.next_allowed_at else None,
            "next": reach.next_send,
            "chosen": chosen,
            "notes": [
                {"note": note, "next": (note.next[0], self._when(note.next[1])) if note.next else None}
                for note in reach.notes
            ],
        }

    async def live(self, request: Request) -> Response:
        """Server-sent events: `change` with the keys of the conversations that changed (at most
        one event per half second; only for the given `conversation`, if asked), and a comment
        line as a heartbeat."""
        only = request.query_params.get("conversation") or None

        async def stream() -> AsyncIterator[str]:
            yield "retry: 2000\n\n"
            async for batch in self.ops.changes.listen():
                if not batch:
                    yield ": alive\n\n"
                elif only is None:
                    yield f"event: change\ndata: {' '.join(sorted(batch))}\n\n"
                elif only in batch:
                    yield f"event: change\ndata: {only}\n\n"

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
