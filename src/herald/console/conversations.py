"""What the conversations, jobs and health pages read: every conversation, newest first, and for one
conversation its turns (what came in, the model's steps, tool calls with arguments and results,
tokens) each with the outbox items it produced (route, anchor, the platform's details, attempts,
code and reason); a job's past runs with their deliveries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pydantic_ai.messages import ModelResponse, ToolReturnPart
from sqlalchemy import func, select

from herald.agent.turns import load_messages
from herald.delivery.codec import describe_details, load_details, load_segments
from herald.store import Database
from herald.store.tables.agent import AgentTurn
from herald.store.tables.outbox import OutboxItem


@dataclass
class Delivery:
    id: str
    origin: str
    state: str
    route: str | None
    anchor_id: str | None
    details: str  # the platform's labelled values, one line ("msg_seq 2")
    attempts: int
    code: int | None
    reason: str | None
    text: str
    seconds: float | None  # from enqueued to delivered


@dataclass
class Step:
    text: str
    calls: list[tuple[str, str]] = field(default_factory=list)  # (tool, arguments)
    results: list[tuple[str, str]] = field(default_factory=list)  # (tool, result)


@dataclass
class TurnView:
    id: int
    kind: str
    content: str
    status: str
    error: str | None
    created_at: datetime
    seconds: float | None
    input_tokens: int
    output_tokens: int
    model: str | None
    steps: list[Step]
    deliveries: list[Delivery]


async def recent_conversations(db: Database, limit: int = 100) -> list[tuple[str, int, datetime]]:
    """(conversation, turns, last activity), newest first."""
    async with db.session() as session:
        rows = await session.execute(
            select(AgentTurn.conversation, func.count(), func.max(AgentTurn.created_at))
            .group_by(AgentTurn.conversation)
            .order_by(func.max(AgentTurn.id).desc())
            .limit(limit)
        )
        return [(str(c), int(n), last) for c, n, last in rows]


def _text(raw: str) -> str:
    return " ".join(str(getattr(segment, "text", "") or "") for segment in load_segments(raw))[:300]


def _steps(raw: str | None) -> list[Step]:
    steps: list[Step] = []
    for message in load_messages(raw):
        if isinstance(message, ModelResponse):
            steps.append(
                Step(
                    message.text or "",
                    [(call.tool_name, call.args_as_json_str()) for call in message.tool_calls],
                )
            )
        elif steps:
            steps[-1].results += [
                (part.tool_name, str(part.content)[:300])
                for part in message.parts
                if isinstance(part, ToolReturnPart)
            ]
    return steps


def _delivery(item: OutboxItem) -> Delivery:
    seconds = (
        (item.finished_at - item.created_at).total_seconds()
        if item.finished_at is not None and item.state == "delivered"
        else None
    )
    return Delivery(
        item.id,
        item.origin,
        item.state,
        item.route,
        item.anchor_id,
        describe_details(load_details(item.details)),
        item.attempts,
        item.code,
        item.reason,
        _text(item.segments),
        seconds,
    )


def _by_turn(items: list[OutboxItem]) -> dict[int, list[Delivery]]:
    by_turn: dict[int, list[Delivery]] = {}
    for item in items:
        # Keys are `turn:<id>:...` for what a turn sent (its tools, its reply, a command's reply).
        parts = (item.idempotency_key or "").split(":")
        if len(parts) < 2 or parts[0] != "turn" or not parts[1].isdigit():
            continue
        by_turn.setdefault(int(parts[1]), []).append(_delivery(item))
    return by_turn


async def conversation(db: Database, key: str, limit: int = 30) -> list[TurnView]:
    """The conversation's newest turns, newest first, each with its deliveries."""
    async with db.session() as session:
        turns = list(
            await session.scalars(
                select(AgentTurn)
                .where(AgentTurn.conversation == key)
                .order_by(AgentTurn.id.desc())
                .limit(limit)
            )
        )
        items = list(
            await session.scalars(
                select(OutboxItem)
                .where(OutboxItem.conversation == key, OutboxItem.idempotency_key.is_not(None))
                .order_by(OutboxItem.seq)
            )
        )
    by_turn = _by_turn(items)
    views: list[TurnView] = []
    for turn in turns:
        seconds = (
            (turn.finished_at - turn.created_at).total_seconds() if turn.finished_at is not None else None
        )
        views.append(
            TurnView(
                turn.id,
                turn.kind,
                turn.content,
                turn.status,
                turn.error,
                turn.created_at,
                seconds,
                turn.input_tokens,
                turn.output_tokens,
                turn.model_name,
                _steps(turn.messages),
                by_turn.get(turn.id, []),
            )
        )
    return views


async def errors_by_code(db: Database, limit: int = 50) -> list[tuple[int, int, str, datetime]]:
    """Items the platform refused, grouped by its code: (code, items, a reason, last time)."""
    async with db.session() as session:
        rows = await session.execute(
            select(
                OutboxItem.code, func.count(), func.max(OutboxItem.reason), func.max(OutboxItem.updated_at)
            )
            .where(OutboxItem.code.is_not(None))
            .group_by(OutboxItem.code)
            .order_by(func.max(OutboxItem.updated_at).desc())
            .limit(limit)
        )
        return [(int(code or 0), int(n), str(reason or ""), last) for code, n, reason, last in rows]


@dataclass
class Run:
    """One firing of a job: the turn it woke (an agent job) or the message it sent (a send job)."""

    fired_at: datetime
    conversation: str
    turn_id: int | None
    outcome: str  # the turn's status, or the send's delivery state
    error: str | None
    deliveries: list[Delivery]


async def job_runs(db: Database, job_id: str, conversation: str, limit: int = 20) -> list[Run]:
    """The job's newest runs, newest first, each with its deliveries."""
    async with db.session() as session:
        turns = list(
            await session.scalars(
                select(AgentTurn)
                .where(AgentTurn.conversation == conversation, AgentTurn.job_id == job_id)
                .order_by(AgentTurn.id.desc())
                .limit(limit)
            )
        )
        # A send job's firing is one outbox item keyed `job:<id>:<slot>`, without a turn.
        sends = list(
            await session.scalars(
                select(OutboxItem)
                .where(OutboxItem.idempotency_key.like(f"job:{job_id}:%"))
                .order_by(OutboxItem.seq.desc())
                .limit(limit)
            )
        )
        items: list[OutboxItem] = []
        if turns:
            items = list(
                await session.scalars(
                    select(OutboxItem)
                    .where(
                        OutboxItem.conversation == conversation,
                        OutboxItem.created_at >= turns[-1].created_at,
                        OutboxItem.idempotency_key.like("turn:%"),
                    )
                    .order_by(OutboxItem.seq)
                )
            )
    by_turn = _by_turn(items)
    runs = [
        Run(turn.created_at, conversation, turn.id, turn.status, turn.error, by_turn.get(turn.id, []))
        for turn in turns
    ]
    runs += [
        Run(item.created_at, item.conversation, None, item.state, None, [_delivery(item)]) for item in sends
    ]
    runs.sort(key=lambda run: run.fired_at, reverse=True)
    return runs[:limit]
