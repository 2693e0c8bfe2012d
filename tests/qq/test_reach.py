"""The reply ledger read for the operator (`reach`), on SQLite and PostgreSQL: live anchors with
their window and replies left, the proactive state and quota, and the next send's route, which
is the one a real send then takes; looking never changes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from herald.config import QQDeliveryConfig
from herald.core.clock import VirtualClock
from herald.core.events import InboundMessage, RelationEvent, RelationKind
from herald.core.platform import NextRoute, Permission, Reach
from herald.core.target import Scene, Target
from herald.qq.reply import (
    VIA_EVENT,
    VIA_RECALL,
    DeliveryMode,
    Plan,
    ReplyLedger,
    Route,
    Undeliverable,
    Unknown,
)
from herald.store.db import Database

START = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
ALICE = Target(Scene.C2C, "alice")
GROUP = Target(Scene.GROUP, "g1")
DEFAULTS = QQDeliveryConfig()


def message(target: Target, mid: str, at: datetime) -> InboundMessage:
    return InboundMessage(target=target, message_id=mid, author_id="a", content="hi", received_at=at)


def ledger(db: Database, clock: VirtualClock, **config: object) -> ReplyLedger:
    """Without interactive recall unless asked (`test_recall_*` ask for it)."""
    config.setdefault("recall", "off")
    return ReplyLedger(db, clock, QQDeliveryConfig(**config))  # type: ignore[arg-type]


async def looked_then_sent(book: ReplyLedger, item_id: str, target: Target = ALICE) -> tuple[Reach, Plan]:
    """What `reach` says, then what a real reservation for a send without a trigger does."""
    seen = await book.reach(target)
    return seen, await book.plan(item_id, 0, target, None)


def agrees(seen: Reach, plan: Plan) -> bool:
    if isinstance(plan, Route):
        routes = {
            DeliveryMode.PASSIVE: (NextRoute.REPLY, ""),
            DeliveryMode.EVENT: (NextRoute.REPLY, VIA_EVENT),
            DeliveryMode.RECALL: (NextRoute.PROACTIVE, VIA_RECALL),
        }
        said = (seen.next_send.route, seen.next_send.via)
        return said == routes.get(plan.mode, (NextRoute.PROACTIVE, "")) and (
            seen.next_send.anchor_id == plan.anchor_id
        )
    return isinstance(plan, Undeliverable) and seen.next_send.route is NextRoute.UNDELIVERABLE


async def test_a_fresh_c2c_message_is_a_passive_anchor_with_the_full_window_and_replies(
    db: Database,
) -> None:
    clock = VirtualClock(START)
    book = ledger(db, clock)
    await book.record(message(ALICE, "m1", START))

    seen = await book.reach(ALICE)

    assert [a.id for a in seen.anchors] == ["m1"]
    anchor = seen.anchors[0]
    assert anchor.kind == "message" and anchor.replies_used == 0
    assert anchor.replies_left == DEFAULTS.c2c_reply_limit
    usable = timedelta(seconds=DEFAULTS.c2c_window_s - DEFAULTS.safety_margin_s)
    assert anchor.usable_until - seen.at == usable
    assert seen.next_send.route is NextRoute.REPLY and seen.next_send.anchor_id == "m1"
    assert seen.next_send.via == ""
    assert "4 replies left" in seen.next_send.why and "59 min left" in seen.next_send.why


async def test_a_group_anchor_has_the_group_window_and_reply_count(db: Database) -> None:
    book = ledger(db, VirtualClock(START))
    await book.record(message(GROUP, "g-m1", START))
    anchor = (await book.reach(GROUP)).anchors[0]
    assert anchor.replies_left == DEFAULTS.group_reply_limit
    assert (anchor.usable_until - START).total_seconds() == DEFAULTS.group_window_s - DEFAULTS.safety_margin_s


async def test_each_reply_takes_one_from_the_anchor_and_looking_takes_none(db: Database) -> None:
    book = ledger(db, VirtualClock(START))
    await book.record(message(ALICE, "m1", START))
    for sent in range(3):
        seen, plan = await looked_then_sent(book, f"i{sent}")
        assert seen.anchors[0].replies_left == DEFAULTS.c2c_reply_limit - sent
        assert agrees(seen, plan) and isinstance(plan, Route) and plan.msg_seq == sent + 1
    for _ in range(3):
        await book.reach(ALICE)
    assert await book.anchor_state("m1") == ("live", 3, 4)  # three sends; the looks took nothing
    assert (await book.reach(ALICE)).anchors[0].replies_left == 1


async def test_past_the_window_the_next_send_is_proactive_in_2026(db: Database) -> None:
    clock = VirtualClock(START)
    book = ledger(db, clock)
    await book.record(message(ALICE, "m1", START))
    await clock.advance(DEFAULTS.c2c_window_s - DEFAULTS.safety_margin_s)

    seen, plan = await looked_then_sent(book, "late")

    assert seen.anchors == ()
    assert seen.proactive.permission is Permission.UNKNOWN
    assert (seen.proactive.used, seen.proactive.limit, seen.proactive.period) == (0, 1000, "day")
    assert seen.next_send.route is NextRoute.PROACTIVE and agrees(seen, plan)


async def test_past_the_window_the_next_send_is_undeliverable_in_2025(db: Database) -> None:
    clock = VirtualClock(START)
    book = ledger(db, clock, platform_mode="2025")
    await book.record(message(ALICE, "m1", START))
    await clock.advance(DEFAULTS.c2c_window_s)

    seen, plan = await looked_then_sent(book, "late")

    assert seen.proactive.permission is Permission.REFUSED and "2025" in seen.proactive.reason
    assert seen.next_send.route is NextRoute.UNDELIVERABLE and agrees(seen, plan)
    assert isinstance(plan, Undeliverable) and seen.next_send.why == plan.reason


async def test_replies_used_up_make_the_next_send_undeliverable_in_2025(db: Database) -> None:
    book = ledger(db, VirtualClock(START), platform_mode="2025")
    await book.record(message(ALICE, "m1", START))
    for sent in range(DEFAULTS.c2c_reply_limit):
        seen, plan = await looked_then_sent(book, f"i{sent}")
        assert agrees(seen, plan)
    seen, plan = await looked_then_sent(book, "one-too-many")
    assert seen.anchors[0].replies_left == 0  # still in its window, shown with none left
    assert seen.next_send.route is NextRoute.UNDELIVERABLE and agrees(seen, plan)


async def test_2023_counts_the_monthly_quota_and_says_when_it_opens_again(db: Database) -> None:
    clock = VirtualClock(START)
    book = ledger(db, clock, platform_mode="2023")
    for sent in range(DEFAULTS.monthly_proactive_limit):
        seen, plan = await looked_then_sent(book, f"p{sent}")
        assert seen.proactive.used == sent and seen.proactive.period == "month"
        assert f"{DEFAULTS.monthly_proactive_limit - sent} of 4 this month left" in seen.next_send.why
        assert agrees(seen, plan)
        assert await book.begin_proactive(f"p{sent}", 0, ALICE) is None  # the send is made

    seen, plan = await looked_then_sent(book, "p-over")
    assert seen.next_send.route is NextRoute.UNDELIVERABLE and agrees(seen, plan)
    # 1 August, 00:00 in Beijing.
    assert seen.proactive.next_allowed_at == datetime(2026, 7, 31, 16, 0, tzinfo=UTC)


async def test_a_used_up_rate_is_a_wait_with_the_time_it_opens(db: Database) -> None:
    clock = VirtualClock(START)
    book = ledger(db, clock, proactive_per_target_per_minute=1)
    first = await book.plan("p0", 0, ALICE, None)
    assert isinstance(first, Route) and await book.begin_proactive("p0", 0, ALICE) is None

    seen = await book.reach(ALICE)

    assert seen.next_send.route is NextRoute.WAIT and "per minute" in seen.next_send.why
    assert seen.proactive.next_allowed_at == START + timedelta(seconds=62)
    assert (seen.proactive.used, seen.proactive.limit) == (1, DEFAULTS.proactive_per_target_per_day)


async def test_a_refusal_by_the_target_is_shown_with_its_reason(db: Database) -> None:
    clock = VirtualClock(START)
    book = ledger(db, clock)
    await book.record(RelationEvent(kind=RelationKind.PROACTIVE_REFUSED, target=ALICE, occurred_at=START))
    seen, plan = await looked_then_sent(book, "p0")
    assert seen.proactive.permission is Permission.REFUSED
    assert seen.proactive.reason == "the target turned proactive messages off"
    assert seen.next_send.route is NextRoute.UNDELIVERABLE and agrees(seen, plan)


async def test_an_event_anchor_is_used_after_the_message_anchors(db: Database) -> None:
    from herald.core.events import Interaction

    clock = VirtualClock(START)
    book = ledger(db, clock)
    await book.record(Interaction(target=ALICE, interaction_id="i1", occurred_at=START, event_id="EV:1"))
    await book.record(message(ALICE, "m1", START))
    kinds = []
    for sent in range(DEFAULTS.c2c_reply_limit + 1):
        seen, plan = await looked_then_sent(book, f"i{sent}")
        assert agrees(seen, plan)
        kinds.append((seen.next_send.route, seen.next_send.via))
    assert kinds == [(NextRoute.REPLY, "")] * 4 + [(NextRoute.REPLY, VIA_EVENT)]
    assert {a.kind for a in seen.anchors} == {"message", "event"}


async def test_recall_in_2025_one_per_period_shown_before_and_after(db: Database) -> None:
    clock = VirtualClock(START)  # 20:00 in Beijing
    book = ledger(db, clock, platform_mode="2025", recall="auto")
    await book.record(message(ALICE, "m1", START))
    await clock.advance(DEFAULTS.c2c_window_s)

    seen, plan = await looked_then_sent(book, "recall-1")
    assert (seen.next_send.route, seen.next_send.via) == (NextRoute.PROACTIVE, VIA_RECALL)
    assert agrees(seen, plan)
    assert [(n.label, n.available) for n in seen.notes] == [("Interactive recall", True)]
    assert seen.notes[0].text == "period same day (unused) · 4 of 4 periods left"
    assert isinstance(plan, Route) and plan.recall_left == 3

    seen, plan = await looked_then_sent(book, "recall-2")
    assert seen.notes[0].text == "period same day (used) · 3 of 4 periods left"
    assert isinstance(plan, Undeliverable) and agrees(seen, plan)
    assert "the next period starts 2026-07-02" in plan.reason

    # Periods are calendar days in Beijing time: 04:00 local on the next day is "days 1-3".
    await clock.advance(timedelta(hours=7).total_seconds())
    seen, plan = await looked_then_sent(book, "recall-3")
    assert seen.notes[0].text.startswith("period days 1-3 (unused)")
    assert isinstance(plan, Route) and plan.mode is DeliveryMode.RECALL and plan.recall_left == 2

    # A retry of the same item after a crash is never resent (no dedup) and spends no period.
    assert isinstance(await book.plan("recall-3", 0, ALICE, None), Unknown)
    seen = await book.reach(ALICE)
    assert seen.notes[0].text == "period days 1-3 (used) · 2 of 4 periods left"


async def test_recall_forecast_projects_replies_then_recall_then_nothing(db: Database) -> None:
    clock = VirtualClock(START)
    book = ledger(db, clock, platform_mode="2025", recall="auto")
    await book.record(message(ALICE, "m1", START))
    minutes = [START + timedelta(minutes=n) for n in range(1, 7)]
    routes = [(s.route, s.via) for s in await book.forecast(ALICE, minutes, held=1)]
    reply, recall, nothing = (
        (NextRoute.REPLY, ""),
        (NextRoute.PROACTIVE, VIA_RECALL),
        (NextRoute.UNDELIVERABLE, ""),
    )
    assert routes == [reply] * 3 + [recall] + [nothing] * 2
    assert await book.reach(ALICE) == await book.reach(ALICE)  # nothing was taken
    off = ledger(db, clock, platform_mode="2025")
    routes = [(s.route, s.via) for s in await off.forecast(ALICE, minutes, held=1)]
    assert routes == [reply] * 3 + [nothing] * 3
