"""The outbox page: every item Herald meant to send, its route or its code and reason; retry what
failed, cancel what has not been sent."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from herald.console.base import Page
from herald.delivery.codec import describe_details, load_details, load_segments
from herald.delivery.inspect import RETRYABLE, cancel, list_items, retry
from herald.delivery.outbox import DELIVERED, FINAL_STATES, PENDING


class OutboxPages(Page):
    async def outbox(self, request: Request) -> Response:
        rows = await list_items(self.ops.db, (PENDING, *FINAL_STATES), limit=200)
        now = self.ops.clock.now()
        items = [
            {
                "id": row.id,
                "conversation": row.conversation,
                # A pending item that was refused and waits for its next try reads "waiting".
                "state": "waiting" if row.state == PENDING and row.code is not None else row.state,
                "next_attempt": self._when(row.next_attempt_at)
                if row.state == PENDING and row.next_attempt_at > now
                else None,
                "route": row.route,
                "anchor_id": row.anchor_id,
                "details": describe_details(load_details(row.details)),
                "attempts": row.attempts,
                "code": row.code,
                "reason": row.reason,
                "text": " ".join(str(getattr(s, "text", "")) for s in load_segments(row.segments))[:120],
            }
            for row in rows
        ]
        return self.render(
            request,
            "outbox.html",
            title="outbox",
            items=items,
            retryable=RETRYABLE,
            cancellable=(PENDING, "waiting"),
            delivered=DELIVERED,
            live="",
        )

    async def retry(self, request: Request) -> Response:
        form = await request.form()
        ids = [str(value) for value in form.getlist("ids")]
        done = [i for i in ids if await retry(self.ops.db, i, self.ops.clock.now(), self.ops.retry_for_s)]
        self.notify(
            request, f"retrying {len(done)} of {len(ids)} item(s)", f"正在重试 {len(done)}/{len(ids)} 条"
        )
        return RedirectResponse("/outbox", status_code=303)

    async def cancel_items(self, request: Request) -> Response:
        form = await request.form()
        ids = [str(value) for value in form.getlist("ids")]
        done = [i for i in ids if await cancel(self.ops.db, i, self.ops.clock.now())]
        en, zh = f"cancelled {len(done)} of {len(ids)} item(s)", f"已取消 {len(done)}/{len(ids)} 条"
        if len(done) < len(ids):
            en += " (only pending items not being sent at this moment can be cancelled)"
            zh += "（只能取消尚未发送、且此刻不在发送中的条目）"
        self.notify(request, en, zh)
        return RedirectResponse("/outbox", status_code=303)
