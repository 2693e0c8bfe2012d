"""Durable turns: an inbound message (or job firing, or command) is stored before its turn runs,
its progress (the turn's pydantic-ai messages) is rewritten after every step, and it is marked done
when it ends. Unique `source_id` makes platform redelivery a durable no-op."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ModelResponse
from sqlalchemy import Executable, Row, bindparam, delete, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from herald.agent.clean import storable
from herald.agent.history import HistoryCache, HistoryTurn
from herald.core.clock import Clock
from herald.core.events import Attachment
from herald.core.history import Summary, TokenUsage
from herald.core.segments import Text
from herald.core.target import Target
from herald.delivery.codec import load_segments
from herald.store import Database
from herald.store.batch import Write
from herald.store.dialect import insert_for
from herald.store.tables.agent import AgentTurn, ConversationSummary
from herald.store.tables.outbox import OutboxItem
from herald.store.types import UTCDateTime

PENDING = "pending"
DONE = "done"
FAILED = "failed"
# Finished turns kept parsed in memory, over all conversations: 5.5 MB of one-line exchanges (2.7
# kB each), and room for 50 conversations reading the default window of 30 turns each.
HISTORY_CACHE_TURNS = 2048


@dataclass(slots=True)
class Turn:
    id: int
    conversation: str
    source_id: str
    kind: str  # message | command | job
    author_id: str | None
    content: str
    trigger_id: str | None
    job_id: str | None
    created_at: datetime
    status: str = PENDING
    messages: list[ModelMessage] = field(default_factory=list)
    # What the message carried (pictures, files, voice, video): for tools, and images for vision.
    attachments: tuple[Attachment, ...] = ()

    @property
    def target(self) -> Target:
        return Target.parse(self.conversation)

    @property
    def images(self) -> tuple[Attachment, ...]:
        return tuple(a for a in self.attachments if a.content_type.startswith("image/"))


def dump_messages(messages: list[ModelMessage]) -> str:
    return ModelMessagesTypeAdapter.dump_json(messages).decode()


def load_messages(raw: str | None) -> list[ModelMessage]:
    return list(ModelMessagesTypeAdapter.validate_json(raw)) if raw else []


ATTACHMENT_FIELDS = ("url", "content_type", "size", "filename", "width", "height", "transcript")


def dump_attachments(attachments: tuple[Attachment, ...]) -> str | None:
    if not attachments:
        return None
    return json.dumps([{name: getattr(item, name) for name in ATTACHMENT_FIELDS} for item in attachments])


def load_attachments(raw: str | None) -> tuple[Attachment, ...]:
    if not raw:
        return ()
    return tuple(
        Attachment(**{name: value for name, value in item.items() if name in ATTACHMENT_FIELDS})
        for item in json.loads(raw)
    )


def turn_usage(messages: list[ModelMessage]) -> TokenUsage:
    """The tokens of every model response in `messages`, and the model of the last one."""
    responses = [m for m in messages if isinstance(m, ModelResponse)]
    return TokenUsage(
        sum(r.usage.input_tokens for r in responses),
        sum(r.usage.output_tokens for r in responses),
        responses[-1].model_name if responses else None,
    )


def _usage(turn: Turn) -> dict[str, Any]:
    usage = turn_usage(turn.messages)
    return {
        "p_input_tokens": usage.input_tokens,
        "p_output_tokens": usage.output_tokens,
        "p_model_name": usage.model_name[:200] if usage.model_name else None,
    }


def _error_text(error: str | None) -> str | None:
    # An error's text can quote what the model or provider sent, unstorable bytes included.
    return None if error is None else storable(error)


@dataclass(frozen=True, slots=True)
class Quoted:
    """A quoted message: who wrote it (None: Herald itself) and its text."""

    author_id: str | None
    text: str


class TurnStore:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        cache_size: int = 4096,
        history_keep: int = 50,
        history_cache_turns: int = HISTORY_CACHE_TURNS,
    ) -> None:
        """`cache_size`: conversations whose summary is kept in memory; `history_keep`: a
        conversation's latest turns kept in memory; `history_cache_turns`: turns kept in all."""
        self.db = db
        self.clock = clock
        insert = insert_for(db.is_postgresql)
        # Built once: the hot path only binds parameters.
        self._record_statement = (
            insert(AgentTurn).on_conflict_do_nothing(index_elements=["source_id"]).returning(AgentTurn.id)
        )
        self._save_statement = (
            update(AgentTurn)
            .where(AgentTurn.id == bindparam("p_id"))
            .values(
                messages=bindparam("p_messages"),
                steps=bindparam("p_steps"),
                input_tokens=bindparam("p_input_tokens"),
                output_tokens=bindparam("p_output_tokens"),
                model_name=bindparam("p_model_name"),
            )
        )
        self._finish_statement = (
            update(AgentTurn)
            .where(AgentTurn.id == bindparam("p_id"))
            .values(
                status=bindparam("p_status"),
                error=bindparam("p_error"),
                finished_at=bindparam("p_finished_at", type_=UTCDateTime()),
            )
        )
        self._end_statement = self._finish_statement.values(
            messages=bindparam("p_messages"),
            steps=bindparam("p_steps"),
            input_tokens=bindparam("p_input_tokens"),
            output_tokens=bindparam("p_output_tokens"),
            model_name=bindparam("p_model_name"),
        )
        summary = insert(ConversationSummary)
        self._summary_statement = summary.on_conflict_do_update(
            index_elements=["conversation"],
            set_={name: summary.excluded[name] for name in ("text", "turns", "updated_at")},
        )
        self._histories = HistoryCache(history_cache_turns, keep=history_keep)
        # Like histories: one conversation's turns run one at a time, through this store.
        self._summaries: OrderedDict[str, Summary | None] = OrderedDict()
        self._cache_size = cache_size
        # Records, step saves and finishes share commits with the rest of the store's writes.
        self._writes = db.writes

    async def close(self) -> None:
        """Nothing to release: the writes run on the database's group commit."""

    async def record(
        self,
        *,
        conversation: str,
        source_id: str,
        kind: str,
        content: str,
        author_id: str | None = None,
        trigger_id: str | None = None,
        job_id: str | None = None,
        ref: str | None = None,
        attachments: tuple[Attachment, ...] = (),
        ended: tuple[str, str] | None = None,
    ) -> Turn | None:
        """Store a new turn; None if `source_id` was already recorded (a redelivery). `ref`: the
        message's quoting handle. `ended`: (status, why) of a turn stored as already ended (one
        refused before it ran), so no instance ever finds it unfinished."""
        now = self.clock.now()
        values = {
            "conversation": conversation,
            "source_id": source_id,
            "kind": kind,
            "author_id": author_id,
            "content": content,
            "trigger_id": trigger_id,
            "job_id": job_id,
            "ref": ref,
            "images": dump_attachments(attachments),
            "status": PENDING if ended is None else ended[0],
            "error": None if ended is None else _error_text(ended[1]),
            "finished_at": None if ended is None else now,
            "steps": 0,
            "in_history": True,
            "created_at": now,
        }
        turn_id = await self._write(self._record_statement, values)
        if turn_id is None:
            return None
        return Turn(
            id=turn_id,
            conversation=conversation,
            source_id=source_id,
            kind=kind,
            author_id=author_id,
            content=content,
            trigger_id=trigger_id,
            job_id=job_id,
            created_at=now,
            status=PENDING if ended is None else ended[0],
            attachments=attachments,
        )

    async def quoted(self, conversation: str, ref: str) -> Quoted | None:
        """The message of this conversation a quote names: a user's (a turn's), or one Herald
        sent (an outbox item's); None when Herald never saw it (older, or from before a reset)."""
        async with self.db.session() as session:
            turn = (
                await session.execute(
                    select(AgentTurn.author_id, AgentTurn.content)
                    .where(AgentTurn.conversation == conversation, AgentTurn.ref == ref)
                    .limit(1)
                )
            ).first()
            if turn is not None:
                return Quoted(turn.author_id, turn.content)
            sent = await session.scalar(
                select(OutboxItem.segments)
                .where(OutboxItem.conversation == conversation, OutboxItem.ref == ref)
                .limit(1)
            )
        if sent is None:
            return None
        return Quoted(None, " ".join(s.text for s in load_segments(sent) if isinstance(s, Text)))

    async def save(self, turn: Turn, steps: int) -> None:
        """Persist the turn's messages so far (after a model response or a round of tool results)."""
        await self._write(
            self._save_statement,
            {"p_id": turn.id, "p_messages": dump_messages(turn.messages), "p_steps": steps, **_usage(turn)},
        )

    async def finish(self, turn: Turn, status: str = DONE, error: str | None = None) -> None:
        turn.status = status
        params = {
            "p_id": turn.id,
            "p_status": status,
            "p_error": _error_text(error),
            "p_finished_at": self.clock.now(),
        }
        await self._write(self._finish_statement, params)
        self.ended(turn, status)

    def ending(self, turn: Turn, steps: int, status: str = DONE, error: str | None = None) -> Write:
        """Saving the turn's messages and ending it, as a write for a writer that commits it
        together with what the turn produced (the reply's outbox row). Call `ended` once it is."""
        params = {
            "p_id": turn.id,
            "p_messages": dump_messages(turn.messages),
            "p_steps": steps,
            "p_status": status,
            "p_error": _error_text(error),
            "p_finished_at": self.clock.now(),
            **_usage(turn),
        }
        return Write(self._end_statement, params)

    async def end(self, turn: Turn, steps: int, status: str = DONE, error: str | None = None) -> None:
        """Save the turn's messages and end it, alone."""
        await self._writes.run(self.ending(turn, steps, status, error).apply)
        self.ended(turn, status)

    def ended(self, turn: Turn, status: str) -> None:
        """The turn's end is committed: extend the in-memory history."""
        turn.status = status
        if status == DONE and turn.messages and turn.kind != "command":
            self._histories.extend(turn.conversation, turn.id, turn.messages)

    async def _write(self, statement: Executable, params: Mapping[str, Any]) -> Any:
        """Run one statement in the shared group commit; its first scalar (if it returns rows)."""
        return await self._writes.run(Write(statement, params).apply)

    async def pending(self) -> list[Turn]:
        """Unfinished turns, oldest first (to resume after a restart)."""
        async with self.db.session() as session:
            rows = await session.scalars(
                select(AgentTurn).where(AgentTurn.status == PENDING).order_by(AgentTurn.id)
            )
            return [self._turn(row) for row in rows]

    async def conversation_pending(
        self, conversation: str, after: int | None = None
    ) -> tuple[list[Turn], bool]:
        """The conversation's unfinished turns, oldest first, and whether a turn after turn `after`
        has ended (another instance ran turns of it: what this store keeps of it is stale)."""
        wanted = AgentTurn.status == PENDING
        if after is not None:
            wanted = or_(wanted, AgentTurn.id > after)
        query = (
            select(*AgentTurn.__table__.columns)
            .where(AgentTurn.conversation == conversation, wanted)
            .order_by(AgentTurn.id)
        )
        async with self.db.reading() as conn:
            rows = (await conn.execute(query)).all()
        pending = [self._turn(row) for row in rows if row.status == PENDING]
        return pending, len(pending) < len(rows)

    async def has_pending(self, conversation: str) -> bool:
        query = (
            select(AgentTurn.id)
            .where(AgentTurn.conversation == conversation, AgentTurn.status == PENDING)
            .limit(1)
        )
        async with self.db.reading() as conn:
            return (await conn.execute(query)).first() is not None

    async def unleased(self, prefix: str, limit: int = 500) -> list[str]:
        """Conversations with unfinished turns and no live lease named `prefix + conversation`
        (PostgreSQL, several instances: the instance running them died)."""
        query = text(
            """
            SELECT DISTINCT t.conversation FROM agent_turns t
            WHERE t.status = 'pending' AND NOT EXISTS (
                SELECT 1 FROM leases l
                WHERE l.name = :prefix || t.conversation AND l.expires_at >= clock_timestamp()
            )
            LIMIT :limit
            """
        )
        async with self.db.reading() as conn:
            return [row[0] for row in await conn.execute(query, {"prefix": prefix, "limit": limit})]

    def known_upto(self, conversation: str) -> int | None:
        """The newest turn id this store keeps history of, for `conversation` (0: an empty history;
        None: nothing kept)."""
        cached = self._histories.peek(conversation)
        if cached is None:
            return None
        return cached[-1].id if cached else 0

    def forget(self, conversation: str) -> None:
        """Drop what is kept in memory of the conversation (another instance ran turns of it)."""
        self._histories.drop(conversation)
        self._summaries.pop(conversation, None)

    async def get(self, turn_id: int) -> Turn | None:
        async with self.db.session() as session:
            row = await session.get(AgentTurn, turn_id)
            return self._turn(row) if row is not None else None

    async def history(self, conversation: str, before: int, limit: int) -> list[list[ModelMessage]]:
        return [turn.messages for turn in await self.history_turns(conversation, before, limit)]

    async def history_turns(self, conversation: str, before: int, limit: int) -> list[HistoryTurn]:
        """The last `limit` finished turns before turn `before`, oldest first.

        Turns of one conversation run one at a time in id order, so after the first load the
        conversation's history is kept in memory and extended as turns finish.
        """
        if limit <= 0:
            return []
        cached = self._histories.get(conversation)
        if cached is None or limit > self._histories.keep:
            cached = await self._load_history(conversation, before, max(limit, self._histories.keep))
            self._histories.put(conversation, cached)
        return [turn for turn in cached if turn.id < before][-limit:]

    async def _load_history(self, conversation: str, before: int, limit: int) -> list[HistoryTurn]:
        query = (
            select(AgentTurn.id, AgentTurn.messages)
            .where(
                AgentTurn.conversation == conversation,
                AgentTurn.id < before,
                AgentTurn.status == DONE,
                AgentTurn.in_history.is_(True),
                AgentTurn.messages.is_not(None),
                AgentTurn.kind != "command",
            )
            .order_by(AgentTurn.id.desc())
            .limit(limit)
        )
        summary_query = select(ConversationSummary.text, ConversationSummary.turns).where(
            ConversationSummary.conversation == conversation
        )
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            # The turn asks for the summary next: read it on the same connection.
            if conversation not in self._summaries:
                found = (await conn.execute(summary_query)).first()
                self._remember_summary(conversation, Summary(found.text, found.turns) if found else None)
        return [HistoryTurn.of(turn_id, load_messages(raw)) for turn_id, raw in reversed(rows)]

    async def reset(self, conversation: str) -> int:
        """Drop the conversation's history (turns stay stored, out of the model's view)."""
        async with self.db.session() as session:
            result = await session.execute(
                update(AgentTurn)
                .where(AgentTurn.conversation == conversation, AgentTurn.in_history.is_(True))
                .values(in_history=False)
            )
            await session.execute(
                delete(ConversationSummary).where(ConversationSummary.conversation == conversation)
            )
            await session.commit()
        self._histories.put(conversation, [])
        self._remember_summary(conversation, None)
        count: int = result.rowcount  # type: ignore[attr-defined]
        return count

    async def summary(self, conversation: str) -> Summary | None:
        if conversation in self._summaries:
            self._summaries.move_to_end(conversation)
            return self._summaries[conversation]
        async with self.db.session() as session:
            row = await session.get(ConversationSummary, conversation)
        found = Summary(row.text, row.turns) if row is not None else None
        self._remember_summary(conversation, found)
        return found

    def _remember_summary(self, conversation: str, summary: Summary | None) -> None:
        self._summaries[conversation] = summary
        self._summaries.move_to_end(conversation)
        while len(self._summaries) > self._cache_size:
            self._summaries.popitem(last=False)

    async def summarized(self, conversation: str, summary: Summary, turn_ids: list[int]) -> None:
        """Store the conversation's new summary, and take the turns it covers out of the history
        (as `/reset` does), in one transaction: a crash leaves both or neither."""
        now = self.clock.now()
        values = {
            "conversation": conversation,
            "text": summary.text,
            "turns": summary.turns,
            "updated_at": now,
        }

        async def work(session: AsyncSession) -> None:
            # On the shared writer, as the turns' own writes: a session of its own would contend
            # with it for SQLite's write lock.
            await session.execute(self._summary_statement, values)
            await session.execute(
                update(AgentTurn).where(AgentTurn.id.in_(turn_ids)).values(in_history=False)
            )

        await self._writes.run(work)
        self._remember_summary(conversation, summary)
        cached = self._histories.peek(conversation)
        if cached is not None:
            gone = set(turn_ids)
            self._histories.put(conversation, [turn for turn in cached if turn.id not in gone])

    async def token_usage(self, conversation: str, since: datetime) -> tuple[TokenUsage, TokenUsage]:
        from sqlalchemy import func

        model_turns = (AgentTurn.conversation == conversation, AgentTurn.model_name.is_not(None))
        async with self.db.session() as session:
            last = (
                await session.execute(
                    select(AgentTurn.input_tokens, AgentTurn.output_tokens, AgentTurn.model_name)
                    .where(*model_turns)
                    .order_by(AgentTurn.id.desc())
                    .limit(1)
                )
            ).first()
            total = (
                await session.execute(
                    select(func.sum(AgentTurn.input_tokens), func.sum(AgentTurn.output_tokens)).where(
                        *model_turns, AgentTurn.created_at >= since
                    )
                )
            ).one()
        latest = TokenUsage(*last) if last is not None else TokenUsage()
        return latest, TokenUsage(int(total[0] or 0), int(total[1] or 0))

    async def count_history(self, conversation: str) -> int:
        from sqlalchemy import func

        async with self.db.session() as session:
            value = await session.scalar(
                select(func.count())
                .select_from(AgentTurn)
                .where(
                    AgentTurn.conversation == conversation,
                    AgentTurn.status == DONE,
                    AgentTurn.in_history.is_(True),
                    AgentTurn.messages.is_not(None),
                )
            )
        return int(value or 0)

    @staticmethod
    def _turn(row: AgentTurn | Row[Any]) -> Turn:
        return Turn(
            id=row.id,
            conversation=row.conversation,
            source_id=row.source_id,
            kind=row.kind,
            author_id=row.author_id,
            content=row.content,
            trigger_id=row.trigger_id,
            job_id=row.job_id,
            created_at=row.created_at,
            status=row.status,
            messages=load_messages(row.messages),
            attachments=load_attachments(row.images),
        )
