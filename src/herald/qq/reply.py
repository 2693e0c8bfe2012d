"""The reply ledger: which route a send may take, decided from what users actually sent us.

An *anchor* is an inbound user message id (`msg_id`) or a replyable event's envelope id
(`event_id`), bound to its scene and target, with its receive time, the replies it has used and
its next `msg_seq`. Anchors are made only from core inbound events (`Anchor.from_event`); an id
the bot got back from its own send is an `OutboundId`, a different type the ledger never takes
(so the seed bug cannot be written).

*Planning* is the ledger's one verb: `plan()` chooses the route of one platform message of one
outbox item and reserves it (persists it, with its `msg_seq`) before the request (invariant 2);
`reach()` and `forecast()` run the same plan without taking anything, for now and for later
times. A retry of the same item and part gets the same
reservation back. A reservation is marked *requested* in a commit before its request is made
(a passive one in the commit that makes it; a proactive one with its rate count, when it is
made) and unmarked when the platform answers with a refusal. A later attempt that finds a
requested proactive reservation without a `sent_id` cannot know whether the platform took it,
and the platform does not dedup a proactive resend: it gets `Unknown`, never a resend
(invariant 9, docs/delivery.md "Outcome unknown").

The plan is: the trigger anchor if inside its window (minus a safety margin) and budget → the
newest valid anchor of the target → a replyable event → proactive if the platform mode and the
target's permission allow → a C2C interactive recall (`is_wakeup`) if the recall period of the
user's last message is unused → `Undeliverable` with the reason (invariants 3, 4). A recall
reservation takes its period in the same commit, so a crash and resend cannot spend two.
All state lives in the database, so several Herald instances (or a restart) agree on it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any, Literal, cast

from sqlalchemy import Select, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningUpdate
from sqlalchemy.sql.elements import ColumnElement

from herald.config import QQDeliveryConfig
from herald.core.clock import Clock
from herald.core.events import (
    InboundEvent,
    InboundMessage,
    Interaction,
    MemberEvent,
    MessageRecalled,
    Reaction,
    RelationEvent,
    RelationKind,
)
from herald.core.platform import (
    Details,
    LiveAnchor,
    NextRoute,
    NextSend,
    Permission,
    ProactiveReach,
    Reach,
    ReachNote,
    Sent,
)
from herald.core.target import Scene, Target
from herald.qq.capabilities import Capabilities
from herald.qq.errors import meaning
from herald.qq.tables import (
    ProactiveSend,
    RecallSend,
    ReplyAnchor,
    ReplyReservation,
)
from herald.qq.targets import TargetCapabilities
from herald.store.batch import defer_insert
from herald.store.db import Database
from herald.store.dialect import insert_for

BEIJING = timezone(timedelta(hours=8))

# Hot paths use the Core tables: ORM-enabled statements cost several times more per row.
ANCHORS = cast(Table, ReplyAnchor.__table__)
RESERVATIONS = cast(Table, ReplyReservation.__table__)
PROACTIVE_SENDS = cast(Table, ProactiveSend.__table__)
RECALL_SENDS = cast(Table, RecallSend.__table__)

# The platform's interactive recall periods, in calendar days (Beijing time) after the day of the
# user's last message: (first day, last day, name). One recall per period, none after day 30.
RECALL_PERIODS = ((0, 0, "same day"), (1, 3, "days 1-3"), (4, 7, "days 4-7"), (8, 30, "days 8-30"))

log = logging.getLogger(__name__)


class DeliveryMode(StrEnum):
    """QQ's routes for one message; the value is `Sent.route` and the reservation's `mode`."""

    PASSIVE = "passive"  # a reply anchored on a user's message (msg_id + msg_seq)
    EVENT = "event"  # a reply anchored on a replyable event (event_id + msg_seq)
    PROACTIVE = "proactive"  # no anchor
    # C2C "interactive recall" (is_wakeup): no anchor, one per period after the user's last message
    RECALL = "recall"


# `NextSend.via` of the QQ routes that have a kind beyond the neutral route.
VIA_EVENT = "event"
VIA_RECALL = "interactive recall"


@dataclass(frozen=True, slots=True)
class RecallReach:
    """Whether an "interactive recall" message (no anchor, one per period counted from the
    user's last message) can reach the target, and what is left of its periods."""

    enabled: bool
    reason: str = ""
    period: str = ""  # the current period, as the platform names it ("same day", "days 1-3", ...)
    used_this_period: bool = False
    periods_left: int | None = None  # periods not yet used, this one included
    periods: int = 4
    next_period_at: datetime | None = None  # when the next period starts (None: none is left)
    ends_at: datetime | None = None  # after this, no recall until the user writes again

    def note(self) -> ReachNote:
        """The line the operator sees among the target's reach."""
        if not self.enabled:
            return ReachNote("Interactive recall", False, "not available", self.reason)
        used = "used" if self.used_this_period else "unused"
        text = f"period {self.period} ({used}) · {self.periods_left} of {self.periods} periods left"
        upcoming = ("next period", self.next_period_at) if self.next_period_at is not None else None
        return ReachNote("Interactive recall", True, text, self.reason, upcoming)


@dataclass(frozen=True, slots=True)
class OutboundId:
    """The id of a message the bot sent (for recall or quoting). Never an anchor."""

    value: str


class AnchorKind(StrEnum):
    MESSAGE = "message"  # used as msg_id
    EVENT = "event"  # used as event_id


@dataclass(frozen=True, slots=True)
class Anchor:
    id: str
    kind: AnchorKind
    target: Target
    received_at: datetime
    event_type: str | None = None

    @classmethod
    def from_event(cls, event: InboundEvent) -> Anchor | None:
        """The anchor an inbound event provides, if any. The only way anchors come to exist."""
        if isinstance(event, InboundMessage):
            return cls(event.message_id, AnchorKind.MESSAGE, event.target, event.received_at)
        if isinstance(event, RelationEvent):
            if event.event_id is None:
                return None
            return cls(event.event_id, AnchorKind.EVENT, event.target, event.occurred_at, event.kind.value)
        if isinstance(event, Interaction):
            if event.event_id is None:
                return None
            return cls(event.event_id, AnchorKind.EVENT, event.target, event.occurred_at, "interaction")
        if isinstance(event, MemberEvent | MessageRecalled | Reaction):
            return None  # no anchor Herald replies on
        raise TypeError(f"only inbound events provide anchors, not {type(event).__name__}")


@dataclass(frozen=True, slots=True)
class Route:
    """How one platform message goes out: passive on a msg_id, on an event_id, or proactive."""

    mode: DeliveryMode
    anchor_id: str | None = None
    msg_seq: int | None = None
    reused: bool = False  # this reservation was made by an earlier attempt of the same item
    requested: bool = False  # its request is marked as (about to be) made and not yet answered
    sent_id: str | None = None  # set when an earlier attempt already delivered this part
    recall_period: int | None = None  # the recall period a RECALL route uses (index in RECALL_PERIODS)
    recall_since: datetime | None = None  # the user's last message the period counts from

    @property
    def recall_left(self) -> int | None:
        """Recall periods left after this send (the later ones; time only moves forward)."""
        return None if self.recall_period is None else len(RECALL_PERIODS) - 1 - self.recall_period

    def sent(self, platform_ids: tuple[str, ...], ref: str | None) -> Sent:
        """What delivery records of a message that went out on this route."""
        details: list[tuple[str, str]] = []
        if self.msg_seq is not None:
            details.append(("msg_seq", str(self.msg_seq)))
        note = ""
        if self.recall_left is not None:
            note = f"{self.recall_left} of {len(RECALL_PERIODS)} periods left"
            details.append(("recall periods left", f"{self.recall_left} of {len(RECALL_PERIODS)}"))
        return Sent(platform_ids, self.mode.value, self.anchor_id, ref, tuple(details), note)

    def body_fields(self) -> dict[str, str | int | bool]:
        if self.mode is DeliveryMode.PASSIVE:
            assert self.anchor_id is not None and self.msg_seq is not None
            return {"msg_id": self.anchor_id, "msg_seq": self.msg_seq}
        if self.mode is DeliveryMode.EVENT:
            assert self.anchor_id is not None and self.msg_seq is not None
            return {"event_id": self.anchor_id, "msg_seq": self.msg_seq}
        if self.mode is DeliveryMode.RECALL:
            return {"is_wakeup": True}
        return {}


@dataclass(frozen=True, slots=True)
class Undeliverable:
    reason: str


@dataclass(frozen=True, slots=True)
class Wait:
    """Proactive is allowed but the target's rate is used up for now; try again after `seconds`."""

    seconds: float
    reason: str


@dataclass(frozen=True, slots=True)
class Unknown:
    """An earlier attempt made this part's request and got no answer; a resend could duplicate."""

    reason: str


Plan = Route | Undeliverable | Wait | Unknown


@dataclass(frozen=True, slots=True)
class SceneRules:
    window_s: float
    reply_limit: int | None  # None: no documented cap


class ReplyLedger:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        config: QQDeliveryConfig | None = None,
        capabilities: Capabilities | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._cfg = cfg = config or QQDeliveryConfig()
        self.targets = TargetCapabilities(db, clock, cfg, capabilities)
        self._rules = {
            Scene.C2C: SceneRules(cfg.c2c_window_s, cfg.c2c_reply_limit),
            Scene.GROUP: SceneRules(cfg.group_window_s, cfg.group_reply_limit),
            Scene.CHANNEL: SceneRules(cfg.guild_window_s, None),
            Scene.DM: SceneRules(cfg.guild_window_s, None),
        }
        self._commits = db.writes

    def rules(self, scene: Scene) -> SceneRules:
        return self._rules[scene]

    # --- recording what users sent -------------------------------------------------------------

    async def record(self, event: InboundEvent) -> Anchor | None:
        """Remember the anchor (and permission change) an inbound event brings. Redeliveries are no-ops."""
        anchor = Anchor.from_event(event)
        statement = _anchor_insert(self._db.is_postgresql)

        async def work(session: AsyncSession) -> None:
            if anchor is not None:
                values = {
                    "id": anchor.id,
                    "kind": anchor.kind.value,
                    "scene": anchor.target.scene.value,
                    "target": anchor.target.key,
                    "event_type": anchor.event_type,
                    "received_at": anchor.received_at,
                    "replies_used": 0,
                    "next_seq": 1,
                    "state": "live",
                }
                await session.execute(statement, values)
            if isinstance(event, RelationEvent):
                if event.kind is RelationKind.PROACTIVE_ALLOWED:
                    await self.targets.set_permission(session, event.target, True, None)
                elif event.kind is RelationKind.PROACTIVE_REFUSED:
                    await self.targets.set_permission(
                        session, event.target, False, "the target turned proactive messages off"
                    )
                elif event.kind in (RelationKind.BOT_REMOVED, RelationKind.FRIEND_REMOVED):
                    await self.targets.set_permission(
                        session, event.target, False, f"relation ended ({event.kind.value})"
                    )
                elif event.kind in (RelationKind.BOT_ADDED, RelationKind.FRIEND_ADDED):
                    await self.targets.set_permission(session, event.target, None, None)

        # Shares a commit with whatever else is being written (other anchors, turns, outbox rows).
        await self._commits.run(work)
        return anchor

    # --- planning and reserving ----------------------------------------------------------------

    async def plan(self, item_id: str, part: int, target: Target, trigger_id: str | None) -> Plan:
        """Plan the route of part `part` of outbox item `item_id`: reserved (persisted) before it is
        used.

        An earlier attempt's reservation is always looked up (never assumed absent: an operator's
        retry restarts the attempt count), so a second insert cannot conflict.
        """

        async def work(session: AsyncSession) -> Plan:
            params = {"p_item": item_id, "p_part": part}
            existing = (await session.execute(_reservation_lookup(), params)).first()
            if existing is not None:
                mode = DeliveryMode(existing.mode)
                unanswered = existing.sent_id is None and existing.requested_at is not None
                if unanswered and mode in (DeliveryMode.PROACTIVE, DeliveryMode.RECALL):
                    return Unknown(
                        f"a {mode.value} send of this message was made at "
                        f"{existing.requested_at.isoformat()} and never answered (crash or timeout); "
                        "the platform has no dedup for proactive sends, so it is not resent"
                    )
                period = None
                if mode is DeliveryMode.RECALL:
                    period = await session.scalar(
                        select(RECALL_SENDS.c.period).where(
                            RECALL_SENDS.c.item_id == item_id, RECALL_SENDS.c.part == part
                        )
                    )
                return Route(
                    mode,
                    existing.anchor_id,
                    existing.msg_seq,
                    reused=True,
                    requested=existing.requested_at is not None,
                    sent_id=existing.sent_id,
                    recall_period=period,
                )
            plan = await self._plan_now(session, target, trigger_id)
            if isinstance(plan, Route):
                now = self._clock.now()
                # A passive route's request follows at once and a resend of it is deduplicated by
                # the platform, so it is marked requested in this commit; a proactive one is marked
                # when it is made (`begin_proactive`), after any rate wait. A recall one follows at
                # once too, but has no dedup: marked here, an unanswered one is never resent.
                requested = plan.mode is not DeliveryMode.PROACTIVE
                reservation = {
                    "item_id": item_id,
                    "part": part,
                    "mode": plan.mode.value,
                    "anchor_id": plan.anchor_id,
                    "msg_seq": plan.msg_seq,
                    "reserved_at": now,
                    "sent_id": None,
                    "requested_at": now if requested else None,
                }
                defer_insert(session, RESERVATIONS, reservation)
                if plan.mode is DeliveryMode.RECALL:
                    assert plan.recall_since is not None and plan.recall_period is not None
                    period = {
                        "target": target.key,
                        "since": plan.recall_since,
                        "period": plan.recall_period,
                        "item_id": item_id,
                        "part": part,
                        "reserved_at": now,
                    }
                    await session.execute(_recall_insert(self._db.is_postgresql), period)
                if requested:
                    plan = Route(
                        plan.mode,
                        plan.anchor_id,
                        plan.msg_seq,
                        requested=True,
                        recall_period=plan.recall_period,
                        recall_since=plan.recall_since,
                    )
            return plan

        # Concurrent reservations (many conversations at once) share one commit.
        return await self._commits.run(work)

    async def begin_proactive(self, item_id: str, part: int, target: Target) -> Wait | Undeliverable | None:
        """Just before a proactive request: re-check the target's limits, count the send, mark it
        requested, in one commit. A `Wait` or `Undeliverable` drops the reservation (re-planned later)."""

        async def work(session: AsyncSession) -> Wait | Undeliverable | None:
            now = self._clock.now()
            refusal = await self._proactive(session, target, now)
            if not isinstance(refusal, Route):
                await session.execute(
                    delete(RESERVATIONS).where(RESERVATIONS.c.item_id == item_id, RESERVATIONS.c.part == part)
                )
                assert not isinstance(refusal, Unknown)
                return refusal
            await session.execute(insert(PROACTIVE_SENDS).values(target=target.key, sent_at=now))
            await session.execute(
                update(RESERVATIONS)
                .where(RESERVATIONS.c.item_id == item_id, RESERVATIONS.c.part == part)
                .values(requested_at=now)
            )
            return None

        return await self._commits.run(work)

    async def mark_requested(self, item_id: str, part: int) -> None:
        """A reused passive reservation whose mark was cleared is about to be requested again."""
        async with self._db.session() as session:
            await session.execute(
                update(RESERVATIONS)
                .where(RESERVATIONS.c.item_id == item_id, RESERVATIONS.c.part == part)
                .values(requested_at=self._clock.now())
            )
            await session.commit()

    async def answered(self, item_id: str, part: int) -> None:
        """The platform answered this part's request with a refusal: it did not take it."""
        async with self._db.session() as session:
            await session.execute(
                update(RESERVATIONS)
                .where(RESERVATIONS.c.item_id == item_id, RESERVATIONS.c.part == part)
                .values(requested_at=None)
            )
            await session.commit()

    async def _plan_now(
        self, session: AsyncSession, target: Target, trigger_id: str | None, *, take: bool = True
    ) -> Plan:
        """The plan of the next send now; `take=False` only looks (the same choice, nothing used)."""
        rules = self._rules[target.scene]
        now = self._clock.now()
        oldest = self._oldest(rules, now)
        choose = self._take if take else self._peek
        candidates: list[tuple[Literal["id", "kind"], str]] = (
            [("id", trigger_id)] if trigger_id is not None else []
        )
        candidates += [("kind", kind.value) for kind in (AnchorKind.MESSAGE, AnchorKind.EVENT)]
        for by, which in candidates:
            route = await choose(session, target, rules, oldest, by, which)
            if route is not None:
                return route
        return await self._proactive(session, target, now)

    def _oldest(self, rules: SceneRules, now: datetime) -> datetime:
        # An anchor received before this is (or will be, by the time the request lands) expired.
        return now - timedelta(seconds=rules.window_s - self._cfg.safety_margin_s)

    async def _take(
        self,
        session: AsyncSession,
        target: Target,
        rules: SceneRules,
        oldest: datetime,
        by: Literal["id", "kind"],
        which: str,
    ) -> Route | None:
        """Atomically take one reply (and the next msg_seq) from the newest usable anchor."""
        take, remaining = _take_statements(by, rules.reply_limit is not None)
        params = {"p_target": target.key, "p_oldest": oldest, "p_which": which, "p_limit": rules.reply_limit}
        # A concurrent reservation may win the last reply of an anchor; then try the next one.
        for _ in range(8):
            taken = (await session.execute(take, params)).one_or_none()
            if taken is not None:
                return Route(_anchor_mode(taken.kind), taken.id, taken.next_seq - 1)
            if not await session.scalar(remaining, params):
                return None
        return None

    async def _peek(
        self,
        session: AsyncSession,
        target: Target,
        rules: SceneRules,
        oldest: datetime,
        by: Literal["id", "kind"],
        which: str,
    ) -> Route | None:
        """The route `_take` would take now, without taking it."""
        params = {"p_target": target.key, "p_oldest": oldest, "p_which": which, "p_limit": rules.reply_limit}
        found = (await session.execute(_peek_statement(by, rules.reply_limit is not None), params)).first()
        return None if found is None else Route(_anchor_mode(found.kind), found.id, found.next_seq)

    async def _proactive(self, session: AsyncSession, target: Target, now: datetime) -> Plan:
        if target.scene not in (Scene.C2C, Scene.GROUP):
            return Route(DeliveryMode.PROACTIVE)
        permission, reason = await self.targets.permission(session, target)
        if permission is Permission.REFUSED:
            if self._cfg.platform_mode == "2025":
                refusal = f"no valid reply anchor (window passed or replies used up) and {reason}"
            else:
                refusal = f"no valid reply anchor and proactive not allowed: {reason}"
            return await self._recall(session, target, now, refusal)
        if self._cfg.platform_mode == "2023":
            used = await self.targets.proactive_count(session, target, _month_start(now))
            if used >= self._cfg.monthly_proactive_limit:
                return await self._recall(
                    session,
                    target,
                    now,
                    f"no valid reply anchor and this month's {self._cfg.monthly_proactive_limit} "
                    "proactive messages are used up (platform mode 2023)",
                )
            return Route(DeliveryMode.PROACTIVE)
        wait = await self.targets.rate_wait(session, target, now)
        return Wait(*wait) if wait is not None else Route(DeliveryMode.PROACTIVE)

    def recall_enabled(self) -> bool:
        setting = self._cfg.recall
        return setting == "on" or (setting == "auto" and self._cfg.platform_mode != "2023")

    async def _recall(self, session: AsyncSession, target: Target, now: datetime, refusal: str) -> Plan:
        """The interactive recall route, when proactive is refused; else why neither goes."""
        state = await self._recall_state(session, target, now)
        if isinstance(state, str):
            return Undeliverable(f"{refusal}; {state}")
        since, period, used = state
        if period in used:
            return Undeliverable(f"{refusal}; {_recall_used(since, period)}")
        return Route(DeliveryMode.RECALL, recall_period=period, recall_since=since)

    async def _recall_state(
        self, session: AsyncSession, target: Target, now: datetime
    ) -> tuple[datetime, int, set[int]] | str:
        """(the user's last message, the period `now` is in, the periods used), or why no recall."""
        if target.scene is not Scene.C2C:
            return "interactive recall exists only in C2C"
        if not self.recall_enabled():
            mode = self._cfg.platform_mode
            return f"interactive recall is off (recall = {self._cfg.recall!r}, platform mode {mode})"
        refused = await self.targets.recall_refused(session, target)
        if refused:
            return f"the platform refused interactive recall to this user ({refused})"
        since = await self._last_message_at(session, target)
        if since is None:
            return "no interactive recall either: the user never wrote"
        period = recall_period(since, now)
        if period is None:
            return "no interactive recall either: the user's last message is more than 30 days old"
        used = await session.scalars(
            select(RECALL_SENDS.c.period).where(
                RECALL_SENDS.c.target == target.key, RECALL_SENDS.c.since == since
            )
        )
        return since, period, set(used)

    async def _last_message_at(self, session: AsyncSession, target: Target) -> datetime | None:
        value: datetime | None = await session.scalar(
            select(func.max(ANCHORS.c.received_at)).where(
                ANCHORS.c.target == target.key, ANCHORS.c.kind == AnchorKind.MESSAGE.value
            )
        )
        if value is not None and value.tzinfo is None:  # SQLite drops the zone in an aggregate
            value = value.replace(tzinfo=UTC)
        return value

    async def release_recall(self, item_id: str, part: int) -> None:
        """The platform refused this recall send without taking it: its period is not used."""
        async with self._db.session() as session:
            await session.execute(
                delete(RECALL_SENDS).where(RECALL_SENDS.c.item_id == item_id, RECALL_SENDS.c.part == part)
            )
            await session.commit()

    # --- outcomes ------------------------------------------------------------------------------

    async def delivered(self, item_id: str, part: int, sent_id: OutboundId | None) -> None:
        """This part arrived; a later retry of the item skips it."""
        async with self._db.session() as session:
            await session.execute(
                update(ReplyReservation)
                .where(ReplyReservation.item_id == item_id, ReplyReservation.part == part)
                .values(sent_id=sent_id.value if sent_id else "")
            )
            await session.commit()

    async def route_died(
        self,
        item_id: str,
        part: int,
        route: Route,
        code: int | None,
        reason: str,
        *,
        keep_reservation: bool = False,
    ) -> Literal["spent", "invalid", "none"]:
        """The platform refused this route: mark its anchor dead and drop the reservation,
        so the next `plan()` starts afresh. A dead anchor is never tried again.

        An anchor the platform does not know (an "invalid" code on one we believed live) means it
        forgot the target's traffic (or never had it): the target's other live anchors that are
        not newer are invalidated with it, so one send never makes a doomed request per anchor.
        """
        verdict: Literal["spent", "invalid", "none"] = "none"
        async with self._db.session() as session:
            if route.anchor_id is not None:
                row = meaning(code)
                verdict = row.anchor if row is not None and row.anchor is not None else "invalid"
                dead_reason = f"{code}: {reason}"
                await session.execute(
                    update(ReplyAnchor)
                    .where(ReplyAnchor.id == route.anchor_id)
                    .values(state=verdict, dead_reason=dead_reason)
                )
                if verdict == "invalid":
                    refused = await session.get(ReplyAnchor, route.anchor_id)
                    if refused is not None:
                        swept = await session.execute(
                            update(ReplyAnchor)
                            .where(
                                ReplyAnchor.target == refused.target,
                                ReplyAnchor.state == "live",
                                ReplyAnchor.received_at <= refused.received_at,
                            )
                            .values(state="invalid", dead_reason=f"{dead_reason} (with {route.anchor_id})")
                        )
                        count = int(getattr(swept, "rowcount", 0) or 0)
                        if count:
                            log.info(
                                "reply ledger %s: the platform does not know anchor %s (code %s); "
                                "%d older live anchor(s) of the target invalidated with it",
                                refused.target,
                                route.anchor_id,
                                code,
                                count,
                            )
            if not keep_reservation:
                await session.execute(
                    delete(ReplyReservation).where(
                        ReplyReservation.item_id == item_id, ReplyReservation.part == part
                    )
                )
            await session.commit()
        return verdict

    # --- reading, for the operator ----------------------------------------------------------

    async def reach(self, target: Target) -> Reach:
        """The target's live anchors, proactive state and the next send's route, as `plan()`
        would choose it for a send without a trigger (a job's, or a reply to the newest message).
        Only reads: looking never changes what the next send does."""
        async with self._db.session() as session:
            now = self._clock.now()
            plan = await self._plan_now(session, target, None, take=False)
            anchors = await self._live_anchors(session, target, now)
            proactive = await self._proactive_reach(session, target, now, plan)
            recall = await self._recall_reach(session, target, now)
        next_send = _next_send(plan, anchors, proactive, now)
        return Reach(now, anchors, proactive, next_send, (recall.note(),))

    async def _recall_reach(self, session: AsyncSession, target: Target, now: datetime) -> RecallReach:
        state = await self._recall_state(session, target, now)
        if isinstance(state, str):
            return RecallReach(False, state, periods=len(RECALL_PERIODS))
        since, period, used = state
        left = len(RECALL_PERIODS) - period - (1 if period in used else 0)
        following = period + 1
        return RecallReach(
            True,
            # The platform counts the periods in calendar days in Beijing time: say it in that time.
            f"counted from the user's last message at {since.astimezone(BEIJING):%Y-%m-%d %H:%M} (Beijing)",
            period=RECALL_PERIODS[period][2],
            used_this_period=period in used,
            periods_left=left,
            periods=len(RECALL_PERIODS),
            next_period_at=_recall_period_start(since, following)
            if following < len(RECALL_PERIODS)
            else None,
            ends_at=_recall_period_start(since, len(RECALL_PERIODS)),
        )

    async def forecast(
        self, target: Target, times: Sequence[datetime], *, held: int = 0
    ) -> tuple[NextSend, ...]:
        """What one send at each of `times` would do, if nothing else were sent but `held`
        messages first: the plan's order and limits (`_plan_at`), on a copy of the ledger's state.
        Assumes the user does not write meanwhile (a new message only adds routes)."""
        rules = self._rules[target.scene]
        usable_for = timedelta(seconds=rules.window_s - self._cfg.safety_margin_s)
        async with self._db.session() as session:
            now = self._clock.now()
            anchors = [
                [a.received_at, a.kind, a.replies_left, a.id]
                for a in await self._live_anchors(session, target, now)
            ]
            permission, reason = await self.targets.permission(session, target)
            month_used: dict[str, int] = {}
            if self._cfg.platform_mode == "2023":
                key = _month_start(now).isoformat()
                month_used[key] = await self.targets.proactive_count(session, target, _month_start(now))
            recall = await self._recall_state(session, target, now)
        guild = target.scene not in (Scene.C2C, Scene.GROUP)
        sends = [now] * held + sorted(times)
        projected: list[NextSend] = []
        for at in sends:
            projected.append(
                self._plan_at(target, at, anchors, usable_for, permission, reason, month_used, recall, guild)
            )
        return tuple(projected[held:])

    def _plan_at(
        self,
        target: Target,
        at: datetime,
        anchors: list[list[Any]],
        usable_for: timedelta,
        permission: Permission,
        reason: str,
        month_used: dict[str, int],
        recall: tuple[datetime, int, set[int]] | str,
        guild: bool,
    ) -> NextSend:
        for kind in (AnchorKind.MESSAGE.value, AnchorKind.EVENT.value):
            for anchor in anchors:  # newest first
                received_at, anchor_kind, left, anchor_id = anchor
                if anchor_kind != kind or received_at + usable_for <= at or left == 0:
                    continue
                if left is not None:
                    anchor[2] = left - 1
                return NextSend(NextRoute.REPLY, f"a reply to {anchor_id}", anchor_id, _via(kind))
        if guild:
            return NextSend(NextRoute.PROACTIVE, "guild scenes: the platform's own limits apply")
        refusal: str | None = None
        if permission is Permission.REFUSED:
            refusal = reason
        elif self._cfg.platform_mode == "2023":
            key = _month_start(at).isoformat()
            if month_used.get(key, 0) < self._cfg.monthly_proactive_limit:
                month_used[key] = month_used.get(key, 0) + 1
                return NextSend(NextRoute.PROACTIVE, "a proactive message (monthly quota)")
            refusal = f"this month's {self._cfg.monthly_proactive_limit} proactive messages are used up"
        else:
            return NextSend(NextRoute.PROACTIVE, "a proactive message")
        if isinstance(recall, str):
            return NextSend(NextRoute.UNDELIVERABLE, f"{refusal}; {recall}")
        since, _, used = recall
        period = recall_period(since, at)
        if period is None:
            return NextSend(
                NextRoute.UNDELIVERABLE,
                f"{refusal}; no interactive recall either: the user's last message is more than 30 days old",
            )
        if period in used:
            return NextSend(NextRoute.UNDELIVERABLE, f"{refusal}; {_recall_used(since, period)}")
        used.add(period)
        left = len(RECALL_PERIODS) - 1 - period
        return NextSend(
            NextRoute.PROACTIVE,
            f"an interactive recall message ({left} of {len(RECALL_PERIODS)} periods left)",
            via=VIA_RECALL,
        )

    async def _live_anchors(
        self, session: AsyncSession, target: Target, now: datetime
    ) -> tuple[LiveAnchor, ...]:
        rules = self._rules[target.scene]
        rows = await session.execute(
            select(ANCHORS.c.id, ANCHORS.c.kind, ANCHORS.c.received_at, ANCHORS.c.replies_used)
            .where(
                ANCHORS.c.target == target.key,
                ANCHORS.c.state == "live",
                ANCHORS.c.received_at > self._oldest(rules, now),
            )
            .order_by(ANCHORS.c.received_at.desc())
            .limit(50)
        )
        usable_for = timedelta(seconds=rules.window_s - self._cfg.safety_margin_s)
        return tuple(
            LiveAnchor(
                id=row.id,
                kind=row.kind,
                received_at=row.received_at,
                usable_until=row.received_at + usable_for,
                replies_used=row.replies_used,
                replies_left=None
                if rules.reply_limit is None
                else max(0, rules.reply_limit - row.replies_used),
            )
            for row in rows
        )

    async def _proactive_reach(
        self, session: AsyncSession, target: Target, now: datetime, plan: Plan
    ) -> ProactiveReach:
        permission, reason = await self.targets.permission(session, target)
        if permission is Permission.REFUSED or target.scene not in (Scene.C2C, Scene.GROUP):
            return ProactiveReach(permission, reason)
        if self._cfg.platform_mode == "2023":
            used = await self.targets.proactive_count(session, target, _month_start(now))
            limit = self._cfg.monthly_proactive_limit
            again = _next_month_start(now) if used >= limit else None
            return ProactiveReach(permission, reason, used, limit, "month", again)
        span, limit, _ = self.targets.rate_windows()[-1]
        since = now - span - timedelta(seconds=self._cfg.proactive_rate_margin_s)
        used = await self.targets.proactive_count(session, target, since)
        again = now + timedelta(seconds=plan.seconds) if isinstance(plan, Wait) else None
        return ProactiveReach(permission, reason, used, limit, "day", again)

    async def reservations(self, item_id: str) -> tuple[Details, ...]:
        """The route reserved for each part of an outbox item, for the operator (`herald outbox
        show`, the console): part, mode, anchor, msg_seq, and the id it arrived as."""
        async with self._db.session() as session:
            rows = await session.scalars(
                select(ReplyReservation)
                .where(ReplyReservation.item_id == item_id)
                .order_by(ReplyReservation.part)
            )
            return tuple(
                tuple(
                    (label, str(value))
                    for label, value in (
                        ("part", row.part),
                        ("mode", row.mode),
                        ("anchor", row.anchor_id),
                        ("msg_seq", row.msg_seq),
                        ("sent", row.sent_id),
                    )
                    if value is not None
                )
                for row in rows
            )

    async def anchor_state(self, anchor_id: str) -> tuple[str, int, int] | None:
        """(state, replies_used, next_seq) of an anchor, for the operator and tests."""
        async with self._db.session() as session:
            row = await session.get(ReplyAnchor, anchor_id)
        return None if row is None else (row.state, row.replies_used, row.next_seq)


def _next_send(
    plan: Plan, anchors: tuple[LiveAnchor, ...], proactive: ProactiveReach, now: datetime
) -> NextSend:
    if isinstance(plan, Route) and plan.anchor_id is not None:
        anchor = next((a for a in anchors if a.id == plan.anchor_id), None)
        via = VIA_EVENT if plan.mode is DeliveryMode.EVENT else ""
        if anchor is None:  # received between the two reads
            return NextSend(NextRoute.REPLY, f"anchor {plan.anchor_id} is live", plan.anchor_id, via)
        replies = (
            "no cap on replies" if anchor.replies_left is None else f"{anchor.replies_left} replies left"
        )
        minutes = max(0, int((anchor.usable_until - now).total_seconds() // 60))
        why = f"the newest live {anchor.kind} anchor has {replies} and {minutes} min left in its window"
        return NextSend(NextRoute.REPLY, why, plan.anchor_id, via)
    if isinstance(plan, Route) and plan.mode is DeliveryMode.RECALL:
        assert plan.recall_period is not None
        why = (
            "no live anchor with replies left and proactive refused; the interactive recall of this "
            f"period ({RECALL_PERIODS[plan.recall_period][2]}) is unused"
        )
        return NextSend(NextRoute.PROACTIVE, why, via=VIA_RECALL)
    if isinstance(plan, Route):
        why = "no live anchor with replies left; proactive messages are open to this target"
        if proactive.used is not None and proactive.limit is not None:
            left = max(0, proactive.limit - proactive.used)
            period = "this month" if proactive.period == "month" else "in 24 h"
            why += f" ({left} of {proactive.limit} {period} left)"
        return NextSend(NextRoute.PROACTIVE, why)
    if isinstance(plan, Wait):
        return NextSend(NextRoute.WAIT, f"no live anchor with replies left and {plan.reason} is reached")
    assert not isinstance(plan, Unknown)  # only an earlier attempt's reservation is unknown
    return NextSend(NextRoute.UNDELIVERABLE, plan.reason)


def _via(kind: str) -> str:
    return "" if kind == AnchorKind.MESSAGE.value else VIA_EVENT


def _anchor_mode(kind: str) -> DeliveryMode:
    return DeliveryMode.PASSIVE if kind == AnchorKind.MESSAGE.value else DeliveryMode.EVENT


def recall_period(since: datetime, at: datetime) -> int | None:
    """The recall period `at` falls in, counted from the user's message at `since` (index in
    RECALL_PERIODS), or None when it is past the last one."""
    days = (at.astimezone(BEIJING).date() - since.astimezone(BEIJING).date()).days
    for index, (first, last, _) in enumerate(RECALL_PERIODS):
        if first <= days <= last:
            return index
    return None


def _recall_period_start(since: datetime, period: int) -> datetime:
    """When recall period `period` begins (the end of the last one for `len(RECALL_PERIODS)`)."""
    day = since.astimezone(BEIJING).replace(hour=0, minute=0, second=0, microsecond=0)
    first = RECALL_PERIODS[period][0] if period < len(RECALL_PERIODS) else RECALL_PERIODS[-1][1] + 1
    return (day + timedelta(days=first)).astimezone(UTC)


def _recall_used(since: datetime, period: int) -> str:
    name = RECALL_PERIODS[period][2]
    if period + 1 < len(RECALL_PERIODS):
        following = _recall_period_start(since, period + 1).astimezone(BEIJING)
        return (
            f"the interactive recall of this period ({name}) is used; "
            f"the next period starts {following:%Y-%m-%d}"
        )
    return f"the interactive recall of the last period ({name}) is used"


def _month_start(now: datetime) -> datetime:
    """The start of the platform's calendar month (Beijing time), in UTC."""
    start = now.astimezone(BEIJING).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start.astimezone(UTC)


def _next_month_start(now: datetime) -> datetime:
    start = _month_start(now).astimezone(BEIJING)
    following = (start + timedelta(days=32)).replace(day=1)
    return following.astimezone(UTC)


@functools.cache
def _reservation_lookup() -> Select[Any]:
    """Built once: an earlier attempt's reservation of one item part."""
    return select(
        RESERVATIONS.c.mode,
        RESERVATIONS.c.anchor_id,
        RESERVATIONS.c.msg_seq,
        RESERVATIONS.c.sent_id,
        RESERVATIONS.c.requested_at,
    ).where(RESERVATIONS.c.item_id == bindparam("p_item"), RESERVATIONS.c.part == bindparam("p_part"))


@functools.cache
def _recall_insert(postgresql: bool) -> Any:
    """Built once: take a recall period; a period already taken stays with its first taker."""
    upsert = insert_for(postgresql)
    return upsert(RECALL_SENDS).on_conflict_do_nothing(index_elements=["target", "since", "period"])


@functools.cache
def _anchor_insert(postgresql: bool) -> Any:
    """Built once: record an anchor unless it exists (the platform redelivers)."""
    upsert = insert_for(postgresql)
    return upsert(ANCHORS).on_conflict_do_nothing(index_elements=["id"])


def _usable(by: Literal["id", "kind"], limited: bool) -> list[ColumnElement[bool]]:
    """What makes an anchor usable for one more reply: the one rule taking and peeking share."""
    conditions: list[ColumnElement[bool]] = [
        ANCHORS.c.target == bindparam("p_target"),
        ANCHORS.c.state == "live",
        ANCHORS.c.received_at > bindparam("p_oldest"),
        ANCHORS.c[by] == bindparam("p_which"),
    ]
    if limited:
        conditions.append(ANCHORS.c.replies_used < bindparam("p_limit"))
    return conditions


@functools.cache
def _peek_statement(by: Literal["id", "kind"], limited: bool) -> Select[Any]:
    """Built once: the newest usable anchor, read only."""
    return (
        select(ANCHORS.c.id, ANCHORS.c.next_seq, ANCHORS.c.kind)
        .where(*_usable(by, limited))
        .order_by(ANCHORS.c.received_at.desc())
        .limit(1)
    )


@functools.cache
def _take_statements(by: Literal["id", "kind"], limited: bool) -> tuple[ReturningUpdate[Any], Select[Any]]:
    """Built once: taking a reply from the newest usable anchor, and counting usable anchors."""
    conditions = _usable(by, limited)
    newest = (
        select(ANCHORS.c.id)
        .where(*conditions)
        .order_by(ANCHORS.c.received_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    take = (
        update(ANCHORS)
        .where(ANCHORS.c.id == newest, *conditions)
        .values(replies_used=ANCHORS.c.replies_used + 1, next_seq=ANCHORS.c.next_seq + 1)
        .returning(ANCHORS.c.id, ANCHORS.c.next_seq, ANCHORS.c.kind)
    )
    remaining = select(func.count()).select_from(ANCHORS).where(*conditions)
    return take, remaining
