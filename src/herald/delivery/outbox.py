"""The durable outbox: every message Herald means to send is a row before any network call.

- `enqueue` commits the row, then returns a `Receipt` that resolves to the real outcome.
- One worker per conversation delivers its items strictly in `seq` order (FIFO); different
  conversations deliver concurrently (bounded).
- Retry-later errors back off through the `Clock` and keep the conversation's head blocked, so
  order holds, for up to `retry_for_s` (an outage is waited out, not counted in attempts); then the
  item is dead. Permanent errors end the item with the platform's code and reason.
- An item whose request may have arrived where a resend could duplicate it (`OUTCOME_UNKNOWN`)
  ends `unknown`: never resent by Herald, shown to the operator, who may resend it.
- When an item finally fails (dead or failed, and a route to the user may exist), the user gets
  one short notice (`failure_notice`) and the operator a WARNING line.
- A crash at any point leaves the row `pending`; `start()` resumes it. The platform adapter reuses
  the route it reserved for the item, so a resend after a crash is deduplicated by the platform.

Rows are claimed with a lease (`claimed_by`, `lease_until`) so several Herald instances can share
one PostgreSQL database later: the head of a conversation is locked with `FOR UPDATE SKIP LOCKED`
and only the head is ever claimed, so two instances never reorder one conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from opentelemetry import trace
from sqlalchemy import Select, Table, bindparam, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from herald.config import DeliveryConfig
from herald.core.clock import Clock
from herald.core.errors import DeliveryError, ErrorKind
from herald.core.platform import Platform, SendRequest, Sent
from herald.core.segments import Media, Segment, Text
from herald.core.target import Target
from herald.core.tracing import OffTracer
from herald.delivery.codec import dump_details, dump_ids, dump_segments, load_segments, sent_from_row
from herald.delivery.receipts import DeliveryResult, Receipt
from herald.delivery.spool import MediaSpool
from herald.store.batch import Write, defer_insert, defer_update
from herald.store.db import Database
from herald.store.dialect import insert_for
from herald.store.tables.outbox import OutboxItem

log = logging.getLogger(__name__)

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"  # the platform (or the route planner) said this item cannot be delivered
DEAD = "dead"  # retry-later errors for `retry_for_s`: gave up
UNKNOWN = "unknown"  # may have arrived; a resend could duplicate it, so it is left to the operator
STREAMING = "streaming"  # a reply being streamed (delivery.stream): no worker claims it
FINAL_STATES = (DELIVERED, FAILED, DEAD, UNKNOWN)
NOTICE_ORIGIN = "notice"  # a failure notice; its own failure is not noticed again

# Hot paths use the Core table: ORM-enabled statements cost several times more per row.
ITEMS = cast(Table, OutboxItem.__table__)

# Re-scan for work another instance left behind (expired lease) or an operator re-queued.
POLL_INTERVAL_S = 5.0


class OutboxObserver(Protocol):
    """Told, without waiting, what happens to items (metrics, plugins' delivery hooks)."""

    def finished(self, result: DeliveryResult, conversation: str, origin: str, state: str) -> None:
        """An item ended: `state` is delivered, failed, dead, unknown or expired; `origin` says who
        sent it (agent_tool, agent_reply, command, job, notice, ...)."""

    def refused(self, code: int | None, conversation: str) -> None:
        """One attempt was refused by the platform with `code` (it may be retried)."""


@dataclass(frozen=True, slots=True)
class _Head:
    seq: int
    id: str
    trigger_id: str | None
    segments: str
    attempts: int  # including the attempt about to be made
    next_attempt_at: datetime
    retry_until: datetime
    expires_at: datetime | None
    origin: str
    conversation: str
    claimed: bool
    behind: bool  # more pending items of the conversation follow it


class Outbox:
    def __init__(
        self,
        db: Database,
        platform: Platform,
        clock: Clock,
        *,
        config: DeliveryConfig | None = None,
        tracer: trace.Tracer | None = None,
        spool: MediaSpool | None = None,
    ) -> None:
        self._db = db
        # Media given as bytes waits there, not in the row (without a spool it is stored inline).
        self._spool = spool
        self._tracer = tracer or OffTracer()
        # item id → the span that enqueued it (a tool call, a turn), parent of its delivery span.
        self._trace_parents: dict[str, trace.SpanContext] = {}
        self._platform = platform
        self._clock = clock
        self._cfg = config or DeliveryConfig()
        self._instance = self._cfg.instance
        self._waiters: dict[str, asyncio.Future[DeliveryResult]] = {}
        self._observers: list[OutboxObserver] = []
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        self._slots = asyncio.Semaphore(self._cfg.max_concurrent_conversations)
        self._poller: asyncio.Task[None] | None = None
        self._running = False
        # Enqueues, claims and outcomes share commits with each other and the rest of the store.
        self._commits = db.writes

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume every pending item, including those this instance held when it stopped or crashed."""
        self._running = True
        async with self._db.session() as session:
            # Same instance name = the previous run of this instance, which is gone now.
            await session.execute(
                update(OutboxItem)
                .where(OutboxItem.state == PENDING, OutboxItem.claimed_by == self._instance)
                .values(claimed_by=None, lease_until=None)
            )
            await session.commit()
        await self._sweep_spool()
        await self._scan()
        self._poller = asyncio.create_task(self._poll_loop(), name="outbox-poll")

    async def _sweep_spool(self) -> None:
        """Remove spooled media no waiting item names (left by a crash before its row committed,
        or by an item that ended while this instance was down)."""
        spool = self._spool
        if spool is None:
            return
        on_disk = await asyncio.to_thread(spool.item_ids)
        if not on_disk:
            return
        keep: set[str] = set()
        async with self._db.session() as session:
            ids = sorted(on_disk)
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = await session.execute(
                    select(OutboxItem.id).where(
                        OutboxItem.id.in_(chunk), OutboxItem.state.in_((PENDING, UNKNOWN))
                    )
                )
                keep.update(row[0] for row in rows)
        swept = await asyncio.to_thread(spool.sweep, keep)
        if swept:
            log.info("outbox: removed the spooled media of %d items no waiting item names", swept)

    async def _spooled(self, item_id: str, segments: Sequence[Segment]) -> list[Segment]:
        """Segments with their bytes written to the spool and named by path (durable before the
        row that names them commits)."""
        spool = self._spool
        if spool is None or not any(isinstance(s, Media) and s.data is not None for s in segments):
            return list(segments)
        out: list[Segment] = []
        for index, segment in enumerate(segments):
            if isinstance(segment, Media) and segment.data is not None:
                path = await asyncio.to_thread(spool.put, item_id, index, segment.data)
                segment = Media(segment.kind, name=segment.file_name, caption=segment.caption, path=path)
            out.append(segment)
        return out

    def _release_spool(self, item_id: str) -> None:
        if self._spool is None:
            return
        try:
            self._spool.release(item_id)
        except OSError as exc:  # a leftover file is swept at the next start
            log.warning("outbox: could not remove the spooled media of %s: %s", item_id, exc)

    async def stop(self) -> None:
        self._running = False
        tasks = [*self._workers.values(), *([self._poller] if self._poller else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()
        self._poller = None

    # --- the public API ------------------------------------------------------------------------

    async def enqueue(
        self,
        target: Target,
        segments: Sequence[Segment],
        *,
        origin: str,
        trigger_id: str | None = None,
        idempotency_key: str | None = None,
        also: Write | None = None,
        expires_at: datetime | None = None,
        streaming: bool = False,
    ) -> Receipt:
        """Store one item (committed before this returns) and schedule its delivery.

        With `streaming`, the item is stored as a stream being shown (`delivery.stream`) and not
        scheduled: the stream ends it, or hands it back with `release`.

        With `expires_at`, the item is never sent at or after that moment (it ends `dead`,
        "expired"), and is retried at most until then.

        With an `idempotency_key` that already exists, returns that item's receipt instead.
        `also` is a write (a statement and its parameters: what the sender records with the item,
        such as the end of the agent turn that produced it) committed in the same transaction,
        whether or not the item was new.
        """
        if not segments:
            raise ValueError("an outbox item needs at least one segment")
        now = self._clock.now()
        item_id = str(uuid.uuid4())
        stored = await self._spooled(item_id, segments)
        row: dict[str, object] = {
            "id": item_id,
            "conversation": target.key,
            "origin": origin,
            "trigger_id": trigger_id,
            "idempotency_key": idempotency_key,
            "segments": dump_segments(stored),
            "state": STREAMING if streaming else PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "retry_until": min(
                now + timedelta(seconds=self._cfg.retry_for_s), expires_at or datetime.max.replace(tzinfo=UTC)
            ),
            "expires_at": expires_at,
            "created_at": now,
            "updated_at": now,
        }
        if idempotency_key is None:
            # Concurrent enqueues (and claims, outcomes) share one commit; ours is in it before
            # this returns.
            async def store(session: AsyncSession) -> None:
                defer_insert(session, ITEMS, row)
                if also is not None:
                    await also.apply(session)

            try:
                await self._commits.run(store)
            except BaseException:
                self._release_spool(item_id)
                raise
        else:
            keyed = _keyed_insert(self._db.is_postgresql)

            async def store_keyed(session: AsyncSession) -> OutboxItem | None:
                # On a key that exists, nothing is inserted (a conflict must not fail the rest of
                # the batch) and the existing item is returned instead.
                if also is not None:
                    await also.apply(session)
                if (await session.execute(keyed, row)).first() is not None:
                    return None
                existing = select(OutboxItem).where(OutboxItem.idempotency_key == idempotency_key)
                return await session.scalar(existing)

            try:
                existing = await self._commits.run(store_keyed)
            except BaseException:
                self._release_spool(item_id)
                raise
            if existing is not None:
                self._release_spool(item_id)  # the item that exists has its own files
                return self._receipt_for(existing)
        receipt = Receipt(item_id, self._future(item_id))
        parent = trace.get_current_span().get_span_context()
        if parent.is_valid:
            self._trace_parents[item_id] = parent
        if not streaming:
            self._kick(target.key)
        return receipt

    # --- streamed items (delivery.stream) ------------------------------------------------------

    async def update_stream(self, item_id: str, values: dict[str, object]) -> None:
        """Write what a stream's latest frame did to its (still streaming) row."""

        async def write(session: AsyncSession) -> None:
            await session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == item_id, OutboxItem.state == STREAMING)
                .values(**values, updated_at=self._clock.now())
            )

        await self._commits.run(write)

    async def stream_delivered(
        self, item_id: str, conversation: str, origin: str, sent: Sent, text: str
    ) -> None:
        """The stream's final frame arrived: the item is delivered, with the text it ended on."""
        now = self._clock.now()
        await self.update_stream(
            item_id,
            {
                "state": DELIVERED,
                "segments": dump_segments([Text(text)]),
                **_sent_values(sent),
                "attempts": 1,
                "finished_at": now,
                "claimed_by": self._instance,
                "lease_until": None,
            },
        )
        result = DeliveryResult(item_id, True, sent, None, None)
        self._tell(lambda observer: observer.finished(result, conversation, origin, DELIVERED))
        self._resolve(result)

    async def release(self, item_id: str, conversation: str, segments: Sequence[Segment]) -> None:
        """Not streamed after all: the item goes out as an ordinary one, with these segments."""
        await self.update_stream(
            item_id,
            {"state": PENDING, "segments": dump_segments(segments), "next_attempt_at": self._clock.now()},
        )
        self._kick(conversation)

    async def receipt(self, item_id: str) -> Receipt:
        """A receipt for an existing item (e.g. one enqueued before a restart)."""
        async with self._db.session() as session:
            row = await session.scalar(select(OutboxItem).where(OutboxItem.id == item_id))
        if row is None:
            raise KeyError(item_id)
        return self._receipt_for(row)

    # --- workers -------------------------------------------------------------------------------

    def _future(self, item_id: str) -> asyncio.Future[DeliveryResult]:
        future = self._waiters.get(item_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._waiters[item_id] = future
        return future

    def _receipt_for(self, row: OutboxItem) -> Receipt:
        future = self._future(row.id)
        if row.state in FINAL_STATES and not future.done():
            future.set_result(_result_of(row))
            self._waiters.pop(row.id, None)
        return Receipt(row.id, future)

    def _kick(self, conversation: str) -> None:
        if not self._running:
            return
        self._dirty.add(conversation)
        if conversation not in self._workers:
            self._workers[conversation] = asyncio.create_task(
                self._work(conversation), name=f"outbox:{conversation}"
            )

    async def _scan(self) -> None:
        now = self._clock.now()
        async with self._db.session() as session:
            rows = await session.execute(
                select(OutboxItem.conversation)
                .where(OutboxItem.state == PENDING, _claimable(self._instance, now))
                .distinct()
            )
            conversations = [row[0] for row in rows]
        for conversation in conversations:
            self._kick(conversation)

    async def _poll_loop(self) -> None:
        while self._running:
            await self._clock.sleep(POLL_INTERVAL_S)
            try:
                await self._scan()
                await self._resolve_finished_elsewhere()
            except Exception:  # a database hiccup must not end polling
                log.exception("outbox poll failed")

    async def _resolve_finished_elsewhere(self) -> None:
        """Receipts of items another instance (or a previous run) finished resolve from the row."""
        waiting = [item_id for item_id, future in self._waiters.items() if not future.done()]
        for start in range(0, len(waiting), 500):
            chunk = waiting[start : start + 500]
            async with self._db.session() as session:
                rows = await session.scalars(
                    select(OutboxItem).where(OutboxItem.id.in_(chunk), OutboxItem.state.in_(FINAL_STATES))
                )
                for row in rows:
                    self._resolve(_result_of(row))

    async def _work(self, conversation: str) -> None:
        try:
            while self._running:
                self._dirty.discard(conversation)
                # A slot is held only while working, not while a head waits out its backoff.
                async with self._slots:
                    head = await self._claim_head(conversation)
                    if head is not None and head.claimed:
                        ended = await self._deliver(conversation, head)
                        # Nothing was behind it and nothing came since (an enqueue here marks the
                        # conversation dirty): no need to look again. Another instance's items
                        # are found by the poll, as when this worker is idle.
                        if ended and not head.behind and conversation not in self._dirty:
                            break
                        continue
                if head is None:
                    if conversation in self._dirty:
                        continue
                    break
                wait = (head.next_attempt_at - self._clock.now()).total_seconds()
                await self._clock.sleep(max(wait, 0.0))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("outbox worker for %s failed; the poll will resume it", conversation)
        finally:
            if self._workers.get(conversation) is asyncio.current_task():
                del self._workers[conversation]

    async def _claim_head(self, conversation: str) -> _Head | None:
        """The conversation's oldest pending item, leased to us (and its attempt counted) if it is
        due; None if there is none or another live instance holds it."""
        now = self._clock.now()
        query = _head_query(self._db.is_postgresql)
        lease_until = now + timedelta(seconds=self._cfg.lease_s)

        async def claim(session: AsyncSession) -> _Head | None:
            row = (await session.execute(query, {"p_conversation": conversation})).one_or_none()
            if row is None:
                return None
            held_by_other = (
                row.claimed_by not in (None, self._instance)
                and row.lease_until is not None
                and row.lease_until > now
            )
            if held_by_other:
                return None
            due = row.next_attempt_at <= now
            if due:
                # Count the attempt before making it (the operator sees how often a head was tried).
                claimed = {
                    "seq": row.seq,
                    "claimed_by": self._instance,
                    "lease_until": lease_until,
                    "attempts": row.attempts + 1,
                    "updated_at": now,
                }
                defer_update(session, ITEMS, "seq", claimed)
            retry_until = row.retry_until or row.created_at + timedelta(seconds=self._cfg.retry_for_s)
            return _Head(
                row.seq,
                row.id,
                row.trigger_id,
                row.segments,
                row.attempts + 1,
                row.next_attempt_at,
                retry_until,
                row.expires_at,
                row.origin,
                conversation,
                claimed=due,
                behind=bool(row.behind),
            )

        return await self._commits.run(claim)

    async def _deliver(self, conversation: str, head: _Head) -> bool:
        """Make the attempt; whether the item ended (False: it waits for a retry)."""
        parent = self._trace_parents.get(head.id)
        context = trace.set_span_in_context(trace.NonRecordingSpan(parent)) if parent else None
        attributes: dict[str, str | int] = {
            "herald.item": head.id,
            "herald.origin": head.origin,
            "herald.attempt": head.attempts,
        }
        with self._tracer.start_as_current_span("herald.delivery", context, attributes=attributes) as span:
            return await self._attempt(conversation, head, span)

    async def _attempt(self, conversation: str, head: _Head, span: trace.Span) -> bool:
        attempt = head.attempts
        if head.expires_at is not None and self._clock.now() >= head.expires_at:
            await self._expired(head)
            return True
        request = SendRequest(
            item_id=head.id,
            target=Target.parse(conversation),
            segments=load_segments(head.segments),
            trigger_id=head.trigger_id,
            attempt=attempt,
        )
        try:
            sent = await self._platform.send(request)
        except DeliveryError as error:
            span.set_attributes({"herald.error_kind": error.kind.value, "herald.code": error.code or 0})
            return await self._failed(head, attempt, error)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an adapter bug must not lose the item: retry, then give up
            log.exception("platform.send raised for outbox item %s", head.id)
            unexpected = DeliveryError(ErrorKind.RETRY_LATER, f"{type(exc).__name__}: {exc}")
            return await self._failed(head, attempt, unexpected)
        else:
            span.set_attributes(
                {
                    "herald.route": sent.route,
                    **{f"herald.{label.replace(' ', '_')}": value for label, value in sent.details},
                }
            )
            await self._delivered(head, sent)
            return True

    async def _delivered(self, head: _Head, sent: Sent) -> None:
        now = self._clock.now()
        values: dict[str, object] = {
            "state": DELIVERED,
            **_sent_values(sent),
            "code": None,
            "reason": None,
            "error_kind": None,
            "updated_at": now,
            "finished_at": now,
            "claimed_by": self._instance,  # kept on a finished item: who delivered it
            "lease_until": None,
        }
        await self._finish(head.seq, values)
        self._ended(head, DeliveryResult(head.id, True, sent, None, None), DELIVERED)

    async def _failed(self, head: _Head, attempt: int, error: DeliveryError) -> bool:
        """Record the failure; whether the item ended (False: a retry is scheduled)."""
        now = self._clock.now()
        if (
            head.expires_at is not None
            and now >= head.expires_at
            and error.kind is not ErrorKind.OUTCOME_UNKNOWN
        ):
            await self._expired(head)
            return True
        retryable = error.kind in (ErrorKind.RETRY_LATER, ErrorKind.REPLAN)
        if error.code is not None:
            self._tell(lambda observer: observer.refused(error.code, head.conversation))
        values: dict[str, object] = {
            "code": error.code,
            "reason": error.reason,
            "error_kind": error.kind.value,
            "updated_at": now,
            "claimed_by": None,
            "lease_until": None,
        }
        if retryable and now < head.retry_until:
            delay = self._backoff(attempt, error.retry_after)
            # The last try is made at the bound itself, so an outage that ends just before it is survived.
            next_at = min(now + timedelta(seconds=delay), head.retry_until)
            values["next_attempt_at"] = next_at
            log.info(
                "outbox item %s: %s; retry %d in %.1fs",
                head.id,
                error,
                attempt + 1,
                (next_at - now).total_seconds(),
            )
            await self._finish(head.seq, values)
            return False
        if error.kind is ErrorKind.OUTCOME_UNKNOWN:
            state = UNKNOWN
            if not error.reason.startswith("outcome unknown"):
                values["reason"] = f"outcome unknown: {error.reason}"
        else:
            state = DEAD if retryable else FAILED
            if retryable:
                values["reason"] = f"gave up after retrying for {self._cfg.retry_for_s:.0f}s: {error.reason}"
        values["state"] = state
        values["finished_at"] = now
        values["claimed_by"] = self._instance
        log.warning(
            "outbox item %s to %s %s after %d attempt(s): %s",
            head.id,
            head.conversation,
            state,
            attempt,
            values["reason"] if error.code is None else f"{values['reason']} (code {error.code})",
        )
        await self._finish(head.seq, values)
        if state in (DEAD, FAILED) and error.kind is not ErrorKind.UNDELIVERABLE:
            await self._notify_failure(head)  # queued before the receipt tells anyone it failed
        self._ended(head, DeliveryResult(head.id, False, None, error.code, str(values["reason"])), state)
        return True

    async def _expired(self, head: _Head) -> None:
        """Its moment passed (a job's next slot came) before it could be sent: not sent, not noticed
        to the user (the next slot brings the next one), logged for the operator."""
        now = self._clock.now()
        assert head.expires_at is not None
        reason = f"expired at {head.expires_at.isoformat()} before it could be sent (not sent)"
        values: dict[str, object] = {
            "state": DEAD,
            "reason": reason,
            "error_kind": None,
            "code": None,
            "updated_at": now,
            "finished_at": now,
            "claimed_by": self._instance,
            "lease_until": None,
        }
        log.warning("outbox item %s to %s dead: %s", head.id, head.conversation, reason)
        await self._finish(head.seq, values)
        self._ended(head, DeliveryResult(head.id, False, None, None, reason), "expired")

    async def _notify_failure(self, head: _Head) -> None:
        """Tell the user, once, that one of their messages did not arrive (never for a notice)."""
        if head.origin == NOTICE_ORIGIN or not self._cfg.failure_notice:
            return
        try:
            await self.enqueue(
                Target.parse(head.conversation),
                [Text(self._cfg.failure_notice)],
                origin=NOTICE_ORIGIN,
                idempotency_key=f"notice:{head.id}",
            )
        except Exception:  # the failure itself is recorded and logged; a lost notice must not hide it
            log.exception("could not queue the failure notice for outbox item %s", head.id)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        # The exponent is capped: attempts are bounded by time, not count, and 2.0**1024 overflows.
        delay = float(min(self._cfg.backoff_max_s, self._cfg.backoff_base_s * 2.0 ** min(attempt - 1, 32)))
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    async def _finish(self, seq: int, values: dict[str, object]) -> None:
        async def write(session: AsyncSession) -> None:
            defer_update(session, ITEMS, "seq", {"seq": seq, **values})

        await self._commits.run(write)

    def observe(self, observer: OutboxObserver) -> None:
        """Also tell `observer` of every item this instance finishes and every refused attempt."""
        self._observers.append(observer)

    def _tell(self, event: Callable[[OutboxObserver], None]) -> None:
        for observer in self._observers:
            try:
                event(observer)
            except Exception:  # an observer (metrics, a plugin's hook) must not stop delivery
                log.exception("an outbox observer failed")

    def _ended(self, head: _Head, result: DeliveryResult, state: str) -> None:
        if state != UNKNOWN:  # an unknown outcome may be resent by the operator: its files stay
            self._release_spool(head.id)
        self._tell(lambda observer: observer.finished(result, head.conversation, head.origin, state))
        self._resolve(result)

    def _resolve(self, result: DeliveryResult) -> None:
        self._trace_parents.pop(result.item_id, None)
        future = self._waiters.pop(result.item_id, None)
        if future is not None and not future.done():
            future.set_result(result)


@functools.cache
def _keyed_insert(postgresql: bool) -> Any:
    """Built once: insert an item unless its idempotency key exists (RETURNING a row if inserted)."""
    insert_ = insert_for(postgresql)
    return insert_(ITEMS).on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(ITEMS.c.seq)


@functools.cache
def _head_query(lock: bool) -> Select[Any]:
    """Built once: the oldest pending item of a conversation (locked, skipping a locked head, on
    PostgreSQL: the head is found first, so a lock held elsewhere never lets a later item jump it),
    and whether more pending items follow it."""
    head_seq = (
        select(func.min(ITEMS.c.seq))
        .where(ITEMS.c.conversation == bindparam("p_conversation"), ITEMS.c.state == PENDING)
        .scalar_subquery()
    )
    query = select(
        ITEMS.c.seq,
        ITEMS.c.id,
        ITEMS.c.trigger_id,
        ITEMS.c.segments,
        ITEMS.c.attempts,
        ITEMS.c.next_attempt_at,
        ITEMS.c.retry_until,
        ITEMS.c.expires_at,
        ITEMS.c.created_at,
        ITEMS.c.origin,
        ITEMS.c.claimed_by,
        ITEMS.c.lease_until,
        exists()
        .where(
            ITEMS.c.conversation == bindparam("p_conversation"),
            ITEMS.c.state == PENDING,
            ITEMS.c.seq > head_seq,
        )
        .label("behind"),
    ).where(ITEMS.c.seq == head_seq)
    return query.with_for_update(skip_locked=True) if lock else query


def _claimable(instance: str, now: datetime) -> ColumnElement[bool]:
    return or_(
        OutboxItem.claimed_by.is_(None),
        OutboxItem.claimed_by == instance,
        OutboxItem.lease_until < now,
    )


def _sent_values(sent: Sent) -> dict[str, object]:
    """A delivered item's columns: what the platform says of how it went."""
    return {
        "route": sent.route,
        "platform_ids": dump_ids(sent.platform_ids),
        "anchor_id": sent.anchor_id,
        "ref": sent.ref,
        "details": dump_details(sent.details),
    }


def _result_of(row: OutboxItem) -> DeliveryResult:
    if row.state == DELIVERED:
        sent = sent_from_row(row.route, row.platform_ids, row.anchor_id, row.ref, row.details)
        return DeliveryResult(row.id, True, sent, None, None)
    return DeliveryResult(row.id, False, None, row.code, row.reason)
