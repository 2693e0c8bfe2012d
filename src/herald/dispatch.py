"""From inbound events and job firings to turns: store first (durable dedup), then run each
conversation's turns one at a time in arrival order; different conversations run concurrently.

Several instances on one PostgreSQL database keep that order across processes with a lease per
conversation (`ConversationClaims`): only the instance holding it runs the conversation's turns,
oldest first, including those other instances stored meanwhile (it reads the conversation's
unfinished turns from the database when it takes the lease, and again before it lets go); an
instance that stores a turn of a conversation held elsewhere leaves it to the holder. The holder
looks again after it lets go, so a turn stored just before that is never stranded, and a holder
that dies leaves its conversations to whichever instance finds them unleased first."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any

from opentelemetry import trace

from herald.agent.approvals import ApprovalBook, Decision, Verdict, parse_button
from herald.agent.policy import Policies
from herald.agent.prompt import job_prompt, message_text
from herald.agent.runner import AgentRunner
from herald.agent.tools import Sender
from herald.agent.turns import DONE, FAILED, PENDING, Quoted, Turn, TurnStore, turn_usage
from herald.changes import ChangeFeed
from herald.commands import CommandContext, Commands
from herald.config import AgentConfig
from herald.core.clock import Clock
from herald.core.events import InboundEvent, InboundMessage, Interaction, InteractionAnswer
from herald.core.jobs import UNDELIVERABLE_PAUSE, Forecast, Job, JobBook, JobError, paused_until_written
from herald.core.platform import NextRoute
from herald.core.schedule import next_after
from herald.core.segments import ButtonKind, Keyboard, Text
from herald.core.target import Scene, Target
from herald.core.tracing import OffTracer
from herald.delivery.inspect import latest_keyboard
from herald.gate import Gate, Refusal
from herald.metrics import Metrics
from herald.scheduler import slot_key
from herald.store.leases import Leases

log = logging.getLogger(__name__)

WAITING_REFRESH_S = 30.0


COALESCED_KEPT = 10_000  # turns merged away, remembered (see Lanes._coalesced)
MAX_CRASHES = 3  # runs of a turn that raise before it is ended (a poison turn)
REFUSED = "refused"  # the gate stopped the turn before it ran; `error` says why
COALESCED = "coalesced"  # merged into a newer turn of its conversation; `error` says which
MESSAGE_BUTTON = 11  # an Interaction's kind for a click on a message button
# `/choose N` answers numbered choices; `/approve ID` and `/deny ID` decide a tool's approval. They
# are handled as they arrive, not in the conversation's line: a turn there may be waiting on them.
CHOICE_COMMAND = re.compile(r"^/(choose|approve|deny)(?:\s+(\S+))?\s*$", re.IGNORECASE)
REFUSAL_ANSWERS = {
    "access": InteractionAnswer.NO_PERMISSION,
    "admin": InteractionAnswer.ADMIN_ONLY,
    "flood": InteractionAnswer.TOO_FREQUENT,
}
Acknowledge = Callable[[Interaction, InteractionAnswer], Awaitable[None]]


class Lanes:
    """One FIFO worker per conversation key, alive while it has work.

    A turn whose handler raises is run again (a resumed turn repeats nothing it finished); after
    `max_crashes` crashes it is handed to `give_up`, so a poison turn cannot hold its
    conversation, or come back at every restart, forever.

    At most `max_concurrent` turns run at once. A conversation with more than `max_waiting`
    turns waiting has its oldest waiting message merged into its newest one and handed to
    `coalesce`, which records that (never a silent drop).
    """

    def __init__(
        self,
        handler: Callable[[Turn], Awaitable[None]],
        give_up: Callable[[Turn, Exception], Awaitable[None]] | None = None,
        *,
        max_crashes: int = MAX_CRASHES,
        max_concurrent: int | None = None,
        max_waiting: int | None = None,
        coalesce: Callable[[Turn, Turn], Coroutine[Any, Any, None]] | None = None,
        claims: ConversationClaims | None = None,
    ) -> None:
        """`claims`: run a conversation's turns only while holding its lease (several instances)."""
        self._claims = claims
        # Turns merged away here, the newest COALESCED_KEPT. Kept after their rows were ended: a
        # read of the conversation's stored turns taken before that must not bring one back (it
        # would be answered twice, and out of order).
        self._coalesced: dict[int, None] = {}
        self._handler = handler
        self._give_up = give_up
        self._max_crashes = max_crashes
        self._queues: dict[str, deque[Turn]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._slots = asyncio.Semaphore(max_concurrent) if max_concurrent is not None else None
        self._max_waiting = max_waiting
        self._coalesce = coalesce
        self._coalescing: set[asyncio.Task[None]] = set()

    def submit(self, turn: Turn) -> None:
        queue = self._queues.setdefault(turn.conversation, deque())
        if self._claims is not None and any(queued.id == turn.id for queued in queue):
            return  # read from the database already, when the lane took its conversation
        queue.append(turn)
        self._idle.clear()
        # Merged only where the conversation's turns run: another instance's queue may be dropped.
        held = self._claims is None or turn.conversation in self._claims.held
        if self._max_waiting is not None and len(queue) - 1 > self._max_waiting and held:
            self._merge_oldest(queue)
        if turn.conversation not in self._workers:
            self._workers[turn.conversation] = asyncio.create_task(
                self._work(turn.conversation), name=f"lane:{turn.conversation}"
            )

    def _merge_oldest(self, queue: deque[Turn]) -> None:
        """Fold the oldest waiting message (queue[0] is running) into the newest one."""
        newest = queue[-1]
        if newest.kind != "message" or newest.messages:
            return  # commands and jobs are not merged; a started turn's prompt is fixed
        oldest = next((t for t in list(queue)[1:-1] if t.kind == "message" and not t.messages), None)
        if oldest is None:
            return
        queue.remove(oldest)
        self._coalesced[oldest.id] = None
        if len(self._coalesced) > COALESCED_KEPT:
            del self._coalesced[next(iter(self._coalesced))]
        newest.content = f"{oldest.content}\n{newest.content}"
        log.info(
            "turn %s in %s coalesced into turn %s: more than %s turns waiting",
            oldest.id,
            oldest.conversation,
            newest.id,
            self._max_waiting,
        )
        if self._coalesce is not None:
            task = asyncio.create_task(self._coalesce(oldest, newest), name=f"coalesce:{oldest.id}")
            self._coalescing.add(task)
            task.add_done_callback(self._coalescing.discard)

    def wake(self, key: str) -> None:
        """Look for the conversation's unfinished turns in the database (stored by another instance
        that is gone) and run them if its lease is free."""
        if self._claims is None or key in self._workers:
            return
        self._queues.setdefault(key, deque())
        self._idle.clear()
        self._workers[key] = asyncio.create_task(self._work(key), name=f"lane:{key}")

    async def _work(self, key: str) -> None:
        queue = self._queues[key]
        claims = self._claims
        done: set[int] = set()  # run here (a turn whose end could not be stored is not run again)
        try:
            while True:
                if claims is not None:
                    stored = await self._claimed(claims, key)
                    if stored is None:
                        queue.clear()  # the holder runs them (or, after an error, the next look)
                        break
                    self._merge(queue, stored, done)
                while queue:
                    if claims is not None and claims.lost(key):
                        queue.clear()  # the new holder runs them
                        break
                    if self._slots is None:
                        await self._run(queue[0])
                    else:
                        async with self._slots:
                            await self._run(queue[0])
                    if claims is not None:
                        claims.ran(key, queue[0].id)
                        done.add(queue[0].id)
                    queue.popleft()
                    if claims is not None and queue:
                        # Another instance may have stored a turn older than the next one here.
                        self._merge(queue, await self._stored(claims, key), done)
                if claims is None:
                    break
                waiting = await self._released(claims, key)
                if not waiting and not queue:
                    break
        finally:
            if not queue:
                self._queues.pop(key, None)
            self._workers.pop(key, None)
            if not self._workers:
                self._idle.set()

    @staticmethod
    async def _claimed(claims: ConversationClaims, key: str) -> list[Turn] | None:
        try:
            return await claims.take(key)
        except Exception:
            log.exception("taking conversation %s failed; it is looked at again shortly", key)
            return None

    @staticmethod
    async def _released(claims: ConversationClaims, key: str) -> bool:
        try:
            return await claims.release(key)
        except Exception:
            log.exception("giving back conversation %s failed; its lease expires on its own", key)
            return False

    @staticmethod
    async def _stored(claims: ConversationClaims, key: str) -> list[Turn]:
        try:
            return await claims.stored(key)
        except Exception:
            log.exception("reading conversation %s's turns failed; running those queued here", key)
            return []

    def _merge(self, queue: deque[Turn], stored: list[Turn], done: set[int]) -> None:
        """Add the turns other instances stored to the queue, in id (arrival) order."""
        if not stored:
            return
        known = {turn.id for turn in queue} | done
        new = (turn for turn in stored if turn.id not in known and turn.id not in self._coalesced)
        merged = sorted([*queue, *new], key=lambda t: t.id)
        queue.clear()
        queue.extend(merged)

    async def _run(self, turn: Turn) -> None:
        for crash in range(1, self._max_crashes + 1):
            try:
                await self._handler(turn)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if crash < self._max_crashes:
                    log.warning(
                        "turn %s in %s crashed (%s: %s); running it again",
                        turn.id,
                        turn.conversation,
                        type(exc).__name__,
                        exc,
                        exc_info=True,
                    )
                    continue
                log.error(
                    "turn %s in %s crashed %d times, last with %s: %s; ending it",
                    turn.id,
                    turn.conversation,
                    crash,
                    type(exc).__name__,
                    exc,
                    exc_info=True,
                )
                if self._give_up is None:
                    return
                try:
                    await self._give_up(turn, exc)
                except Exception:
                    log.exception("ending turn %s failed; it stays pending until restart", turn.id)

    @property
    def busy(self) -> int:
        return len(self._workers)

    async def wait_idle(self) -> None:
        await self._idle.wait()
        if self._coalescing:
            await asyncio.gather(*self._coalescing, return_exceptions=True)

    @property
    def conversations(self) -> set[str]:
        return set(self._workers)

    async def stop(self) -> None:
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._queues.clear()
        self._idle.set()


CONVERSATION_LEASE = "conversation:"  # + the conversation's key
RAN_KEPT = 4096  # conversations whose last turn run here is remembered


class ConversationClaims:
    """Which instance runs a conversation's turns, when several share one PostgreSQL database.

    A lane takes its conversation's lease before running anything and gives it back when it has
    nothing left; leases held are renewed every third of `ttl_s`, and conversations whose turns
    wait with no live lease (their instance died) are looked for as often.
    """

    def __init__(self, leases: Leases, turns: TurnStore, *, ttl_s: float = 30.0) -> None:
        self.leases = leases
        self.turns = turns
        self.ttl_s = ttl_s
        self.held: set[str] = set()
        self._lost: set[str] = set()
        self._ran: dict[str, int] = {}  # the last turn this instance ran, per held conversation
        self._task: asyncio.Task[None] | None = None

    async def start(self, lanes: Lanes) -> None:
        # Held by a previous run of this instance, which is gone now.
        await self.leases.release_all(CONVERSATION_LEASE)
        self._task = asyncio.create_task(self._keep(lanes), name="conversation-leases")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        held, self.held = list(self.held), set()
        for key in held:
            with contextlib.suppress(Exception):
                await self.leases.release(CONVERSATION_LEASE + key)

    async def take(self, key: str) -> list[Turn] | None:
        """Take the conversation: its unfinished turns (all instances'), or None while another
        instance holds it."""
        if not await self.leases.take(CONVERSATION_LEASE + key, self.ttl_s):
            return None
        self.held.add(key)
        self._lost.discard(key)
        upto = max(self.turns.known_upto(key) or 0, self._ran.get(key, 0))
        pending, stale = await self.turns.conversation_pending(key, upto or None)
        if stale or not upto:
            # Another instance may have run turns of it since this one did: its history is reread.
            self.turns.forget(key)
        return pending

    async def stored(self, key: str) -> list[Turn]:
        """The conversation's unfinished turns, all instances'."""
        pending, _ = await self.turns.conversation_pending(key)
        return pending

    def ran(self, key: str, turn_id: int) -> None:
        self._ran.pop(key, None)
        self._ran[key] = turn_id
        if len(self._ran) > RAN_KEPT:
            del self._ran[next(iter(self._ran))]

    def lost(self, key: str) -> bool:
        return key in self._lost

    async def release(self, key: str) -> bool:
        """Give the conversation back; True if turns of it are waiting (stored elsewhere while
        this instance held it), which the caller then tries to take again."""
        self.held.discard(key)
        if key in self._lost:
            self._lost.discard(key)
            return False
        await self.leases.release(CONVERSATION_LEASE + key)
        return await self.turns.has_pending(key)

    async def _keep(self, lanes: Lanes) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            try:
                held = set(self.held)
                kept = {
                    name.removeprefix(CONVERSATION_LEASE)
                    for name in await self.leases.renew([CONVERSATION_LEASE + k for k in held], self.ttl_s)
                }
                for key in held - kept:
                    if key in self.held:
                        log.warning("conversation %s: its lease was lost; another instance runs it now", key)
                        self._lost.add(key)
                for key in await self.turns.unleased(CONVERSATION_LEASE):
                    lanes.wake(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("renewing conversation leases failed; trying again")


class Dispatcher:
    def __init__(
        self,
        *,
        turns: TurnStore,
        runner: AgentRunner,
        commands: Commands,
        sender: Sender,
        config: AgentConfig,
        clock: Clock,
        on_message: Callable[[InboundMessage], None] | None = None,
        on_event: Callable[[InboundEvent], None] | None = None,
        metrics: Metrics | None = None,
        changes: ChangeFeed | None = None,
        tracer: trace.Tracer | None = None,
        policies: Policies | None = None,
        gate: Gate | None = None,
        jobs: JobBook | None = None,
        forecast: Forecast | None = None,
        stopped_notice: str = "",
        approvals: ApprovalBook | None = None,
        acknowledge: Acknowledge | None = None,
        claims: ConversationClaims | None = None,
    ) -> None:
        """`policies`: what each scope gets (none: the configuration's); `gate`: access and limits
        checked before a message's turn runs (none: everyone, no limits); `jobs` and `forecast`:
        to pause a job the user can no longer be reached by (with `stopped_notice`), and resume it
        when they write. `claims`: several instances share the database (PostgreSQL); a
        conversation's turns run where its lease is held. `on_message` hears every message stored
        for a turn; `on_event` every event the platform delivered, once handled (a message
        redelivered after it was stored excepted). `approvals`: tool calls waiting for a person,
        decided by clicks and `/approve`; `acknowledge`: answers a click once routing decided how
        (the platform's)."""
        self.approvals = approvals
        self.acknowledge = acknowledge
        self.policies = policies
        self.jobs = jobs
        self.forecast = forecast
        self.stopped_notice = stopped_notice
        self._waiting: set[str] | None = None  # see _waiting_conversations
        self._waiting_read_at = 0.0
        self.tracer = tracer or OffTracer()
        self.on_message = on_message
        self.on_event = on_event
        self.metrics = metrics
        self.changes = changes
        self.turns = turns
        self.runner = runner
        self.commands = commands
        self.sender = sender
        self.config = config
        self.clock = clock
        self.gate = gate
        limits = gate.limits if gate is not None else None
        self.lanes = Lanes(
            self._handle,
            self._crashed,
            max_concurrent=limits.max_concurrent_turns if limits is not None else None,
            max_waiting=limits.max_waiting_per_conversation if limits is not None else None,
            coalesce=self._coalesced,
            claims=claims,
        )
        self.claims = claims
        self.duplicates = 0  # inbound messages dropped because their id was already stored

    async def sink(self, event: InboundEvent) -> None:
        """The platform's event sink: returns once the message is stored (its turn runs later).

        Events other than messages start no turn; like every message that is not a stored
        duplicate, they go to `on_event` (plugins) once handled."""
        if isinstance(event, Interaction):
            await self._interaction(event)
        elif not isinstance(event, InboundMessage):
            log.debug("%s starts no turn", type(event).__name__)
        elif not await self._message(event):
            return  # a redelivery of a message already stored: its hooks ran the first time
        if self.on_event is not None:
            self.on_event(event)

    async def _message(self, event: InboundMessage) -> bool:
        """Store `event` for a turn if it is to be answered; False if it was stored before."""
        # Every scene: C2C and DMs are always addressed to the bot; group and channel messages
        # say whether they @ the bot.
        if event.guild_id is not None and self.policies is not None and event.target.scene is Scene.CHANNEL:
            self.policies.note_guild(event.target.id, event.guild_id)
        if not event.mentions_bot and not self._answers_unmentioned(event):
            return True
        content = event.content.strip()
        if not content and not event.attachments:
            return True
        choice = CHOICE_COMMAND.match(content)
        if choice is not None and await self._choice(event, choice.group(1).lower(), choice.group(2) or ""):
            return True
        command = self.commands.parse(content)
        kind = "command" if command is not None else "message"
        verdict = (
            await self.gate.check(event, command[0] if command is not None else None)
            if self.gate is not None
            else None
        )
        if kind == "message":
            quoted = None
            if event.quotes is not None:
                quoted = await self.turns.quoted(event.target.key, event.quotes)
                if quoted is None and event.quoted_text is not None:
                    quoted = Quoted(event.quoted_author, event.quoted_text)
            content = message_text(event, quoted)
        turn = await self.turns.record(
            conversation=event.target.key,
            source_id=event.message_id,
            kind=kind,
            content=content,
            author_id=event.author_id,
            trigger_id=event.message_id,
            ref=event.ref,
            attachments=event.attachments,
            # A refused turn is stored ended: another instance must never take it for one to run.
            ended=(REFUSED, verdict.refusal.reason) if verdict is not None and verdict.refusal else None,
        )
        if turn is None:
            self.duplicates += 1
            log.debug("duplicate message %s dropped", event.message_id)
            return False
        if verdict is not None and verdict.refusal is not None:
            await self._refuse(turn, event, verdict.refusal)
            return True
        if self.gate is not None and verdict is not None:
            self.gate.admitted(event, turn.id, verdict.admin)
        # Before the turn can run: whatever answers this message sees its jobs resumed.
        await self._resume_jobs(event.target.key)
        self.lanes.submit(turn)
        if self.metrics is not None:
            self.metrics.inbound_events.labels(event.target.scene.value).inc()
        if self.changes is not None:
            self.changes.changed(event.target.key)
        if self.on_message is not None:
            self.on_message(event)
        return True

    # --- clicks, /choose, /approve, /deny ---------------------------------------------------------

    async def _answer(self, interaction: Interaction, answer: InteractionAnswer) -> None:
        if self.acknowledge is not None:
            await self.acknowledge(interaction, answer)

    async def _interaction(self, event: Interaction) -> None:
        """A click: an approval's decision, or a new turn telling the agent which button."""
        if event.kind != MESSAGE_BUTTON or not event.button_data:
            log.debug("interaction %s of kind %s: nothing to route", event.interaction_id, event.kind)
            await self._answer(event, InteractionAnswer.OK)
            return
        user = event.user_id or ""
        approval = parse_button(event.button_data)
        if approval is not None:
            decision = await self._decide(approval[1], approval[0], user, event.target)
            await self._answer(event, _click_answer(decision))
            return
        keyboard = await latest_keyboard(self.turns.db, event.target.key)
        label = _label(keyboard, event.button_data)
        message = InboundMessage(
            target=event.target,
            message_id=f"interaction:{event.interaction_id}",
            author_id=user,
            content=f"[clicked the button {label!r} (data: {event.button_data})]",
            received_at=event.occurred_at,
            event_id=event.event_id,
        )
        content = message_text(message, None)  # in a group, says who clicked
        verdict = await self.gate.check(message, None) if self.gate is not None else None
        if verdict is not None and verdict.refusal is not None:
            log.info(
                "click %s by %s in %s refused: %s",
                event.interaction_id,
                user,
                event.target.key,
                verdict.refusal.reason,
            )
            await self._answer(event, REFUSAL_ANSWERS.get(verdict.refusal.kind, InteractionAnswer.FAILED))
            return
        turn = await self.turns.record(
            conversation=event.target.key,
            source_id=message.message_id,
            kind="message",
            content=content,
            author_id=user or None,
            trigger_id=event.event_id,
        )
        if turn is None:
            await self._answer(event, InteractionAnswer.DUPLICATE)
            return
        if self.gate is not None and verdict is not None:
            self.gate.admitted(message, turn.id, verdict.admin)
        self.lanes.submit(turn)
        await self._answer(event, InteractionAnswer.OK)
        if self.changes is not None:
            self.changes.changed(event.target.key)

    async def _decide(
        self, approval_id: str, approve: bool, user: str, where: Target, roles: tuple[str, ...] = ()
    ) -> Decision:
        if self.approvals is None:
            return Decision(Verdict.UNKNOWN)
        return await self.approvals.decide(approval_id, approve, user, where, roles)

    async def _choice(self, event: InboundMessage, name: str, arg: str) -> bool:
        """Handle `/choose N`, `/approve ID` or `/deny ID` now; False: not ours (the agent's)."""
        if name in ("approve", "deny"):
            if self.approvals is None:
                return False
            return await self._reply_now(event, await self._decision_text(event, name == "approve", arg))
        keyboard = await latest_keyboard(self.turns.db, event.target.key)
        if keyboard is None:
            return await self._reply_now(event, "没有可选的选项 (there is nothing to choose from).")
        if not arg.isdigit() or not 1 <= int(arg) <= len(keyboard.buttons):
            return await self._reply_now(
                event,
                f"请回复 /choose 1 到 {len(keyboard.buttons)} (reply /choose 1 to {len(keyboard.buttons)}).",
            )
        button = keyboard.buttons[int(arg) - 1]
        approval = parse_button(button.data)
        if approval is not None:
            return await self._reply_now(event, await self._decision_text(event, approval[0], approval[1]))
        if button.kind is ButtonKind.LINK:
            return await self._reply_now(event, f"{button.label}: {button.data}")
        if button.kind is ButtonKind.COMMAND:
            if CHOICE_COMMAND.match(button.data.strip()):
                return await self._reply_now(event, f"{button.label}: {button.data}")
            # As if the user had sent what the button puts in their input box.
            await self._message(dataclasses.replace(event, content=button.data))
            return True
        # A callback: the agent hears about it as it would about a click.
        await self._message(
            dataclasses.replace(
                event, content=f"[chose {arg}: the button {button.label!r} (data: {button.data})]"
            )
        )
        return True

    async def _decision_text(self, event: InboundMessage, approve: bool, approval_id: str) -> str:
        if not approval_id:
            return "请给出编号 (give the approval's id): /approve ID"
        decision = await self._decide(approval_id, approve, event.author_id, event.target, event.author_roles)
        approval = decision.approval
        if decision.verdict is Verdict.DECIDED and approval is not None:
            done = "已批准 (approved)" if approve else "已拒绝 (denied)"
            return f"{done}: [{approval.id}] {approval.tool}"
        if decision.verdict is Verdict.NOT_APPROVER and approval is not None:
            zh, en = ("管理员", "an admin") if approval.approver == "admin" else ("发起人", "the requester")
            return f"只有{zh}可以决定 [{approval.id}] (only {en} may decide)."
        if decision.verdict is Verdict.ALREADY_DECIDED and approval is not None:
            return f"[{approval.id}] 已经决定 (already decided): {approval.status}"
        return f"没有编号为 {approval_id} 的审批 (no approval {approval_id})."

    async def _reply_now(self, event: InboundMessage, text: str) -> bool:
        """Answer `event` with `text`, stored as a finished command turn (a redelivery is a no-op)."""
        turn = await self.turns.record(
            conversation=event.target.key,
            source_id=event.message_id,
            kind="command",
            content=event.content.strip(),
            author_id=event.author_id,
            trigger_id=event.message_id,
        )
        if turn is None:
            self.duplicates += 1
            return True
        await self.sender.enqueue(
            event.target,
            [Text(text)],
            origin="command",
            trigger_id=event.message_id,
            idempotency_key=f"turn:{turn.id}:reply",
        )
        await self.turns.finish(turn, DONE)
        if self.changes is not None:
            self.changes.changed(event.target.key)
        return True

    def _answers_unmentioned(self, event: InboundMessage) -> bool:
        if self.policies is None:
            return self.config.answer_unmentioned
        return self.policies.resolve(event.target, event.author_id, event.guild_id).answer_unmentioned

    async def _refuse(self, turn: Turn, event: InboundMessage, refusal: Refusal) -> None:
        """Tell the user why the turn did not run (stored ended), once per burst; the model never sees it."""
        assert self.gate is not None
        log.info(
            "refused %s %s from %s in %s: %s",
            turn.kind,
            turn.id,
            event.author_id,
            event.target.key,
            refusal.reason,
        )
        if self.gate.should_tell(event.target, event.author_id, refusal):
            await self.sender.enqueue(
                event.target,
                [Text(refusal.text)],
                origin="refusal",
                trigger_id=event.message_id,
                idempotency_key=f"turn:{turn.id}:refusal",
            )
        if self.changes is not None:
            self.changes.changed(event.target.key)

    async def _coalesced(self, turn: Turn, into: Turn) -> None:
        reason = (
            f"coalesced into turn {into.id}: too many turns waiting ([limits] max_waiting_per_conversation)"
        )
        try:
            await self.turns.finish(turn, COALESCED, reason)
        except Exception:
            log.exception("recording turn %s as coalesced failed; it stays pending until restart", turn.id)
        if self.changes is not None:
            self.changes.changed(turn.conversation)

    async def _waiting_conversations(self) -> set[str]:
        """The conversations with a job paused until the user writes. Known from this process's
        own pauses and re-read every `WAITING_REFRESH_S` (another instance may have paused one),
        so a message costs a query only where such a job may be."""
        assert self.jobs is not None
        now = time.monotonic()
        if self._waiting is None or now - self._waiting_read_at > WAITING_REFRESH_S:
            jobs = await self.jobs.list_jobs()
            self._waiting = {job.conversation for job in jobs if paused_until_written(job)}
            self._waiting_read_at = now
        return self._waiting

    async def _resume_jobs(self, conversation: str) -> None:
        """The user wrote: jobs paused because nothing could reach them fire again."""
        if self.jobs is None or conversation not in await self._waiting_conversations():
            return
        assert self._waiting is not None
        self._waiting.discard(conversation)
        for job in await self.jobs.list_jobs(conversation):
            if paused_until_written(job):
                try:
                    await self.jobs.resume(job.id)
                except JobError as exc:  # ended or resumed meanwhile
                    log.info("job %s not resumed: %s", job.id, exc)
                    continue
                log.info("job %s (%s) resumed: the user wrote in %s", job.id, job.name, conversation)

    async def _still_deliverable(self, job: Job, slot: datetime, key: str) -> bool:
        """Whether this firing should run. When the firing after it could not reach the user, this
        one's route carries a notice instead, once, and the job pauses until the user writes; when
        not even this one can, the job pauses without one (nothing would arrive)."""
        if self.forecast is None or self.jobs is None:
            return True
        now = self.clock.now()
        following = next_after(job.schedule, max(slot, now))
        times = [now] if following is None else [now, following]
        routes = await self.forecast(job.target, times)
        if all(send.route is not NextRoute.UNDELIVERABLE for send in routes):
            return True
        stopped = routes[0].route is NextRoute.UNDELIVERABLE
        why = routes[0].why if stopped else routes[-1].why
        try:
            await self.jobs.pause(job.id, reason=f"{UNDELIVERABLE_PAUSE}: {why}")
            if self._waiting is not None:
                self._waiting.add(job.conversation)
        except JobError as exc:
            log.info("job %s not paused: %s", job.id, exc)
            return False
        log.warning("job %s (%s) in %s paused: %s", job.id, job.name, job.conversation, why)
        if not stopped and self.stopped_notice:
            await self.sender.enqueue(
                job.target,
                [Text(self.stopped_notice.format(name=job.name))],
                origin="job_stopped",
                idempotency_key=f"{key}:stopped",
            )
        return False

    async def fire_job(self, job: Job, slot: datetime) -> None:
        """The scheduler's callback; idempotent per (job, slot)."""
        key = slot_key(job, slot)
        if not await self._still_deliverable(job, slot, key):
            return
        if job.action == "send":
            # Pointless once the next slot comes (that slot sends its own); a missed slot fired late
            # (coalesced) still gets until the slot after now.
            expires_at = next_after(job.schedule, max(slot, self.clock.now()))
            await self.sender.enqueue(
                job.target,
                [Text(job.text or job.name)],
                origin="job",
                idempotency_key=key,
                expires_at=expires_at,
            )
            return
        turn = await self.turns.record(
            conversation=job.conversation,
            source_id=key,
            kind="job",
            content=job_prompt(job.name, job.id, job.note, slot, self.config.timezone),
            author_id=job.creator_id,
            job_id=job.id,
        )
        if turn is not None:
            self.lanes.submit(turn)

    async def resume(self) -> int:
        """Queue every unfinished turn (after a crash or stop), oldest first."""
        if self.claims is not None:
            await self.claims.start(self.lanes)
        pending = await self.turns.pending()
        for turn in pending:
            self.lanes.submit(turn)
        if pending:
            log.info("resuming %d unfinished turns", len(pending))
        return len(pending)

    async def _handle(self, turn: Turn) -> None:
        attributes = {"herald.conversation": turn.conversation, "herald.turn.kind": turn.kind}
        try:
            with self.tracer.start_as_current_span("herald.turn", attributes=attributes) as span:
                span.set_attribute("herald.turn.id", str(turn.id))
                await self._run_turn(turn)
        finally:
            if self.gate is not None and turn.status != PENDING:
                usage = turn_usage(turn.messages)
                self.gate.ended(
                    turn.id, turn.conversation, turn.author_id, usage.input_tokens + usage.output_tokens
                )
            if self.changes is not None:
                self.changes.changed(turn.conversation)

    async def _run_turn(self, turn: Turn) -> None:
        if turn.kind == "command":
            await self._command(turn)
            return
        started = time.perf_counter()
        await self.runner.run(turn)
        if self.metrics is not None:
            self.metrics.turn_seconds.observe(time.perf_counter() - started)
            usage = turn_usage(turn.messages)
            self.metrics.llm_tokens.labels("input").inc(usage.input_tokens)
            self.metrics.llm_tokens.labels("output").inc(usage.output_tokens)

    async def _crashed(self, turn: Turn, error: Exception) -> None:
        """End a turn that keeps crashing: the user gets the short error reply, the turn the cause."""
        await self.sender.enqueue(
            turn.target,
            [Text(self.config.error_message)],
            origin="agent_error",
            trigger_id=turn.trigger_id,
            idempotency_key=f"turn:{turn.id}:error",
        )
        cause = f"crashed {MAX_CRASHES} times, last with {type(error).__name__}: {error}"
        await self.turns.finish(turn, FAILED, cause[:2000])
        if self.gate is not None:
            self.gate.ended(turn.id, turn.conversation, turn.author_id, 0)

    async def _command(self, turn: Turn) -> None:
        if CHOICE_COMMAND.match(turn.content):
            # Handled when it arrived; only a crash between storing and finishing it gets here.
            log.warning("turn %s (%s) was stopped mid-way; the user may send it again", turn.id, turn.content)
            await self.turns.finish(turn, FAILED, "stopped while being handled; not repeated")
            return
        admin = self.gate is not None and self.gate.turn_admin(turn.id, turn.target, turn.author_id)
        language = self.policies.resolve(turn.target, turn.author_id).language if self.policies else "zh+en"
        context = CommandContext(
            turn_id=turn.id, target=turn.target, author_id=turn.author_id, admin=admin, language=language
        )
        try:
            reply = await self.commands.run(context, turn.content)
        except Exception as exc:
            log.exception("command %r in %s failed", turn.content, turn.conversation)
            await self.turns.finish(turn, FAILED, f"{type(exc).__name__}: {exc}")
            return
        await self.sender.enqueue(
            turn.target,
            [Text(reply)] if isinstance(reply, str) else reply.segments(),
            origin="command",
            trigger_id=turn.trigger_id,
            idempotency_key=f"turn:{turn.id}:reply",
        )
        await self.turns.finish(turn, DONE)

    async def stop(self) -> None:
        await self.lanes.stop()
        if self.claims is not None:
            await self.claims.stop()


def _click_answer(decision: Decision) -> InteractionAnswer:
    if decision.verdict is Verdict.DECIDED:
        return InteractionAnswer.OK
    if decision.verdict is Verdict.ALREADY_DECIDED:
        return InteractionAnswer.DUPLICATE
    if decision.verdict is Verdict.NOT_APPROVER:
        admin = decision.approval is not None and decision.approval.approver == "admin"
        return InteractionAnswer.ADMIN_ONLY if admin else InteractionAnswer.NO_PERMISSION
    return InteractionAnswer.FAILED


def _label(keyboard: Keyboard | None, data: str) -> str:
    """The label of the button that carried `data`, as sent most recently."""
    if keyboard is not None:
        for button in keyboard.buttons:
            if button.data == data:
                return button.label
    return data
