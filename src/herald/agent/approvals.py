"""Tool calls that wait for a person: `approve_tools` in a scope's policy.

When the model calls such a tool, the call is stored as a pending approval (keyed by the call's
key, so a resumed turn finds it again), the approver is asked once (a message with Approve and
Deny buttons, or `/approve ID` and `/deny ID` as text), and the turn waits: for a decision, or
for the deadline, which denies. The decision is stored before anyone acts on it, so a restart
loses neither a pending approval nor a decision made while Herald was down; the tool then runs
once, and the model is told what happened as the call's result.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import select, update

from herald.core.clock import Clock
from herald.core.segments import Button, ButtonKind, Keyboard, Segment, Text
from herald.core.target import Target
from herald.delivery.receipts import Receipt
from herald.store import Database
from herald.store.dialect import insert_for
from herald.store.tables.approvals import ToolApproval

log = logging.getLogger(__name__)

PENDING = "pending"
APPROVED = "approved"
DENIED = "denied"
TIMED_OUT = "timed_out"
# What a click or `/choose N` on an approval button carries: `herald:approve:<id>`.
BUTTON_PREFIX = "herald:"
APPROVE_DATA = "herald:approve:"
DENY_DATA = "herald:deny:"
# Another instance may decide: a waiting turn reads the row again at least this often.
POLL_S = 30.0
ARGUMENTS_SHOWN = 300  # characters of the call's arguments the approver is shown
_ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: typed by people


def new_approval_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))


class Verdict(StrEnum):
    DECIDED = "decided"
    NOT_APPROVER = "not_approver"
    ALREADY_DECIDED = "already_decided"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Approval:
    id: str
    key: str
    turn_id: int
    conversation: str
    tool: str
    arguments: str
    requester: str | None
    approver: str  # user | admin
    status: str
    decided_by: str | None
    deadline: datetime

    @property
    def target(self) -> Target:
        return Target.parse(self.conversation)

    def outcome(self) -> str:
        """The call's result the model is shown when the tool did not run."""
        if self.status == DENIED:
            return f"denied by {self.decided_by or 'the approver'}: the tool did not run. Tell the user."
        if self.status == TIMED_OUT:
            return (
                "timed out: nobody approved the call before its deadline, so the tool did not run. "
                "Tell the user."
            )
        return f"not approved ({self.status}): the tool did not run"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    approval: Approval | None = None


def _row(row: ToolApproval) -> Approval:
    return Approval(
        id=row.id,
        key=row.key,
        turn_id=row.turn_id,
        conversation=row.conversation,
        tool=row.tool,
        arguments=row.arguments,
        requester=row.requester,
        approver=row.approver,
        status=row.status,
        decided_by=row.decided_by,
        deadline=row.deadline,
    )


class Asker(Protocol):
    """What the approvals need from the outbox: sending the question."""

    async def enqueue(
        self,
        target: Target,
        segments: list[Segment],
        *,
        origin: str,
        trigger_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Receipt: ...


IsAdmin = Callable[[Target, str, Sequence[str]], bool]


def question(approval: Approval, timeout_s: float) -> list[Segment]:
    """The message that asks the approver, with its buttons."""
    minutes = max(1, round(timeout_s / 60))
    who = "管理员 (an admin)" if approval.approver == "admin" else "发起人 (the requester)"
    text = (
        f"需要批准 (approval needed) [{approval.id}]: {approval.tool}({approval.arguments})\n"
        f"由{who}决定，{minutes} 分钟内无人批准则拒绝 (denied after {minutes} min).\n"
        f"/approve {approval.id} 或 (or) /deny {approval.id}"
    )
    buttons = [
        Button("批准 Approve", ButtonKind.CALLBACK, APPROVE_DATA + approval.id),
        Button("拒绝 Deny", ButtonKind.CALLBACK, DENY_DATA + approval.id),
    ]
    return [Text(text), Keyboard.of(buttons)]


def parse_button(data: str | None) -> tuple[bool, str] | None:
    """(approve?, approval id) for an approval button's data, else None."""
    if data is None:
        return None
    if data.startswith(APPROVE_DATA):
        return True, data.removeprefix(APPROVE_DATA)
    if data.startswith(DENY_DATA):
        return False, data.removeprefix(DENY_DATA)
    return None


class ApprovalBook:
    def __init__(
        self, db: Database, clock: Clock, asker: Asker | None = None, is_admin: IsAdmin | None = None
    ) -> None:
        self.db = db
        self.clock = clock
        self.asker = asker
        self.is_admin = is_admin
        self._insert = insert_for(db.is_postgresql)
        self._waiters: dict[str, asyncio.Event] = {}

    async def _by(self, **where: str) -> Approval | None:
        async with self.db.session() as session:
            query = select(ToolApproval)
            for column, value in where.items():
                query = query.where(getattr(ToolApproval, column) == value)
            row = await session.scalar(query)
            return _row(row) if row is not None else None

    async def get(self, approval_id: str) -> Approval | None:
        return await self._by(id=approval_id.strip().lower())

    async def request(
        self,
        *,
        key: str,
        turn_id: int,
        target: Target,
        tool: str,
        arguments: dict[str, Any],
        requester: str | None,
        approver: str,
        timeout_s: float,
        trigger_id: str | None,
    ) -> Approval:
        """The call's approval, stored (once per key) and asked (once per key)."""
        found = await self._by(key=key)
        if found is None:
            now = self.clock.now()
            shown = json.dumps(arguments, ensure_ascii=False)
            if len(shown) > ARGUMENTS_SHOWN:
                shown = shown[:ARGUMENTS_SHOWN] + "…"
            values = {
                "id": new_approval_id(),
                "key": key,
                "turn_id": turn_id,
                "conversation": target.key,
                "tool": tool,
                "arguments": shown,
                "requester": requester,
                "approver": approver,
                "status": PENDING,
                "created_at": now,
                "deadline": now + timedelta(seconds=timeout_s),
            }
            async with self.db.session() as session:
                await session.execute(
                    self._insert(ToolApproval).values(**values).on_conflict_do_nothing(index_elements=["key"])
                )
                await session.commit()
            found = await self._by(key=key)
            assert found is not None
            log.info(
                "tool %s in %s waits for approval %s (%s, until %s)",
                tool,
                target.key,
                found.id,
                approver,
                found.deadline.isoformat(),
            )
        if found.status == PENDING and self.asker is not None:
            # Keyed: a resumed turn asking again finds the first question's outbox item.
            await self.asker.enqueue(
                target,
                question(found, (found.deadline - self.clock.now()).total_seconds()),
                origin="approval",
                trigger_id=trigger_id,
                idempotency_key=f"{key}:approval",
            )
        return found

    async def wait(self, approval: Approval) -> Approval:
        """Until `approval` is decided, or its deadline passes (then it is timed out)."""
        event = self._waiters.setdefault(approval.id, asyncio.Event())
        try:
            while True:
                event.clear()  # before reading: a decision from here on is not missed
                current = await self.get(approval.id)
                if current is None:
                    raise RuntimeError(f"approval {approval.id} disappeared from the store")
                if current.status != PENDING:
                    return current
                remaining = (current.deadline - self.clock.now()).total_seconds()
                if remaining <= 0:
                    await self._close(current.id, TIMED_OUT, None)
                    continue
                await _first(event.wait(), self.clock.sleep(min(remaining, POLL_S)))
        finally:
            self._waiters.pop(approval.id, None)

    async def _close(self, approval_id: str, status: str, by: str | None) -> bool:
        """Decide a pending approval; False when it was decided already."""
        async with self.db.session() as session:
            result = await session.execute(
                update(ToolApproval)
                .where(ToolApproval.id == approval_id, ToolApproval.status == PENDING)
                .values(status=status, decided_by=by, decided_at=self.clock.now())
            )
            await session.commit()
        changed = bool(getattr(result, "rowcount", 0))
        waiter = self._waiters.get(approval_id)
        if waiter is not None:
            waiter.set()
        return changed

    def may_decide(self, approval: Approval, user: str, where: Target, roles: Sequence[str] = ()) -> bool:
        if approval.approver == "admin":
            return self.is_admin is not None and self.is_admin(where, user, roles)
        return approval.requester is not None and user == approval.requester

    async def decide(
        self, approval_id: str, approve: bool, user: str, where: Target, roles: Sequence[str] = ()
    ) -> Decision:
        """`user` approves or denies in `where` (with the roles the platform reported)."""
        approval = await self.get(approval_id)
        if approval is None:
            return Decision(Verdict.UNKNOWN)
        if not self.may_decide(approval, user, where, roles):
            log.info("approval %s: %s may not decide it (approver: %s)", approval.id, user, approval.approver)
            return Decision(Verdict.NOT_APPROVER, approval)
        if approval.status == PENDING and approval.deadline <= self.clock.now():
            await self._close(approval.id, TIMED_OUT, None)
            return Decision(Verdict.ALREADY_DECIDED, await self.get(approval.id))
        status = APPROVED if approve else DENIED
        if not await self._close(approval.id, status, user):
            return Decision(Verdict.ALREADY_DECIDED, await self.get(approval.id))
        log.info(
            "approval %s (%s in %s): %s by %s",
            approval.id,
            approval.tool,
            approval.conversation,
            status,
            user,
        )
        return Decision(Verdict.DECIDED, await self.get(approval.id))


async def _first(*waits: Any) -> None:
    """Until the first of `waits` is done; the others are cancelled."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
