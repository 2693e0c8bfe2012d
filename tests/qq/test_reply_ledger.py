"""The reply ledger's invariants on SQLite and PostgreSQL."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from herald.config import QQDeliveryConfig
from herald.core.clock import VirtualClock
from herald.core.events import InboundMessage, Interaction, RelationEvent, RelationKind
from herald.core.platform import Sent
from herald.core.target import Scene, Target
from herald.qq.reply import Anchor, DeliveryMode, OutboundId, Plan, ReplyLedger, Route, Undeliverable, Wait
from herald.store.db import Database

START = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
ALICE = Target(Scene.C2C, "alice")
GROUP = Target(Scene.GROUP, "g1")


def message(target: Target, mid: str, at: datetime) -> InboundMessage:
    return InboundMessage(target=target, message_id=mid, author_id="a", content="hi", received_at=at)


def ledger(db: Database, clock: VirtualClock, **config: object) -> ReplyLedger:
    """A ledger without interactive recall unless asked: most rules here are about anchors."""
    config.setdefault("recall", "off")
    return ReplyLedger(db, clock, QQDeliveryConfig(**config))  # type: ignore[arg-type]


# --- invariant 1: a bot-sent id is never an anchor ------------------------------------------


async def test_a_bot_sent_id_is_refused_at_run_time(db: Database) -> None:
    book = ledger(db, VirtualClock(START))
    for not_an_event in (
        OutboundId("ROBOT1.0_bot"),
        Sent(("ROBOT1.0_bot",), "passive"),
        "ROBOT1.0_x",
    ):
        with pytest.raises(TypeError):
            await book.record(not_an_event)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            Anchor.from_event(not_an_event)  # type: ignore[arg-type]


def test_a_bot_sent_id_is_a_type_error(tmp_path: Path) -> None:
    from mypy import api

    snippet = tmp_path / "seed_bug.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from herald.qq.reply import OutboundId, ReplyLedger, Anchor

            async def remember_own_send(ledger: ReplyLedger, sent: OutboundId) -> None:
                await ledger.record(sent)
                Anchor.from_event(sent)
            """
        )
    )
    out, _, status = api.run(["--strict", "--no-incremental", "--follow-imports=silent", str(snippet)])
    assert status == 1, out
    assert out.count('incompatible type "OutboundId"') == 2, out


# --- invariant 2: msg_seq per anchor, persisted, never reused for another message -----------


async def test_msg_seq_is_reserved_per_item_and_reused_only_by_its_retry(db: Database) -> None:
    clock = VirtualClock(START)
    book = ledger(db, clock)
    await book.record(message(ALICE, "m1", START))
    first = await book.plan("item-1", 0, ALICE, "m1")
    second = await book.plan("item-2", 0, ALICE, "m1")
    again = await ledger(db, clock).plan("item-1", 0, ALICE, "m1")  # a new process, same item

    assert isinstance(first, Route) and isinstance(second, Route) and isinstance(again, Route)
    assert (first.anchor_id, first.msg_seq) == ("m1", 1)
    assert (second.anchor_id, second.msg_seq) == ("m1", 2)
    assert (again.anchor_id, again.msg_seq, again.reused) == ("m1", 1, True)
    assert await book.anchor_state("m1") == ("live", 2, 3)


async def test_a_dropped_route_never_gives_its_msg_seq_to_another_message(db: Database) -> None:
    book = ledger(db, VirtualClock(START))
    await book.record(message(ALICE, "m1", START))
    first = await book.plan("item-1", 0, ALICE, "m1")
    assert isinstance(first, Route)
    await book.route_died("item-1", 0, Route(first.mode), 40054005, "deduplicated")
    replanned = await book.plan("item-1", 0, ALICE, "m1")
    assert isinstance(replanned, Route) and replanned.msg_seq == 2


# --- invariant 3: windows and budgets, with a safety margin ---------------------------------


async def test_budget_and_window_per_scene(db: Database) -> None:
    clock = VirtualClock(START)
    book = ledger(db, clock, platform_mode="2025")
    await book.record(message(ALICE, "m1", START))
    routes = [await book.plan(f"i{n}", 0, ALICE, "m1") for n in range(5)]
    assert [r.mode for r in routes[:4] if isinstance(r, Route)] == [DeliveryMode.PASSIVE] * 4
    assert isinstance(routes[4], Undeliverable)  # the 5th C2C reply (limit 4)

    await book.record(message(GROUP, "g-m1", START))
    await clock.advance(300 - 30)  # group window 5 min minus the 30 s safety margin
    late = await book.plan("g-late", 0, GROUP, "g-m1")
    assert isinstance(late, Undeliverable)


async def test_c2c_anchor_is_valid_until_the_margin_before_60_minutes(db: Database) -> None:
    clock = VirtualClock(START)
    book = ledger(db, clock, platform_mode="2025")
    await book.record(message(ALICE, "m1", START))
    await clock.advance(3600 - 31)
    assert isinstance(await book.plan("a", 0, ALICE, "m1"), Route)
    await clock.advance(2)
    assert isinstance(await book.plan("b", 0, ALICE, "m1"), Undeliverable)


async def test_a_dead_anchor_is_never_planned_again(db: Database) -> None:
    book = ledger(db, VirtualClock(START), platform_mode="2025")
    await book.record(message(ALICE, "m1", START))
    route = await book.plan("i1", 0, ALICE, "m1")
    assert isinstance(route, Route)
    assert await book.route_died("i1", 0, route, 40034024, "msg_id invalid") == "invalid"
    assert isinstance(await book.plan("i1", 0, ALICE, "m1"), Undeliverable)
    assert (await book.anchor_state("m1") or ("",))[0] == "invalid"


# --- invariant 4: explicit fallback ---------------------------------------------------------


async def test_fallback_trigger_then_newest_then_event_then_proactive_then_recall_then_undeliverable(
    db: Database,
) -> None:
    clock = VirtualClock(START)
    book = ledger(db, clock, recall="auto")
    await book.record(message(ALICE, "old", START))
    await clock.advance(60)
    await book.record(message(ALICE, "new", clock.now()))
    event = Interaction(
        target=ALICE, interaction_id="int-1", occurred_at=clock.now(), event_id="INTERACTION_CREATE:e1"
    )
    await book.record(event)

    plans = [await book.plan(f"i{n}", 0, ALICE, "old") for n in range(13)]
    anchors = [(p.mode, p.anchor_id) for p in plans if isinstance(p, Route)]
    assert anchors[:4] == [(DeliveryMode.PASSIVE, "old")] * 4  # the trigger first
    assert anchors[4:8] == [(DeliveryMode.PASSIVE, "new")] * 4  # then the newest valid anchor
    assert anchors[8:12] == [(DeliveryMode.EVENT, "INTERACTION_CREATE:e1")] * 4  # then an event
    assert anchors[12] == (DeliveryMode.PROACTIVE, None)  # then proactive

    refusal = RelationEvent(kind=RelationKind.PROACTIVE_REFUSED, target=ALICE, occurred_at=clock.now())
    await book.record(refusal)
    recall = await book.plan("i-recall", 0, ALICE, None)
    assert isinstance(recall, Route) and recall.mode is DeliveryMode.RECALL
    assert recall.body_fields() == {"is_wakeup": True}
    refused = await book.plan("i-last", 0, ALICE, None)
    assert isinstance(refused, Undeliverable) and "proactive" in refused.reason
    assert "interactive recall of this period (same day) is used" in refused.reason


async def proactive(book: ReplyLedger, item_id: str, target: Target = ALICE) -> Plan:
    """Reserve a proactive route and make its send (counted when made, not when reserved)."""
    plan = await book.plan(item_id, 0, target, None)
    if isinstance(plan, Route) and plan.mode is DeliveryMode.PROACTIVE:
        refusal = await book.begin_proactive(item_id, 0, target)
        if refusal is not None:
            return refusal
    return plan


async def test_proactive_rate_per_target_makes_a_send_wait(db: Database) -> None:
    clock = VirtualClock(START)
    book = ledger(db, clock, proactive_per_target_per_minute=3)
    plans = [await proactive(book, f"p{n}") for n in range(4)]
    assert [type(p) for p in plans] == [Route, Route, Route, Wait]
    wait = plans[3]
    # The window frees one minute after the oldest send, plus the margin.
    assert isinstance(wait, Wait) and wait.seconds == 62
    await clock.advance(wait.seconds - 1)
    assert isinstance(await proactive(book, "p3"), Wait)
    await clock.advance(1)
    assert isinstance(await proactive(book, "p3"), Route)


async def test_a_proactive_send_is_counted_when_made_not_when_reserved(db: Database) -> None:
    # Reserved long ago (a crash before the send): the window counts the send's own moment.
    clock = VirtualClock(START)
    book = ledger(db, clock, proactive_per_target_per_minute=2)
    early = await book.plan("early", 0, ALICE, None)
    assert isinstance(early, Route) and early.mode is DeliveryMode.PROACTIVE
    await clock.advance(50)
    assert await proactive(book, "a") is not None and await proactive(book, "b") is not None
    # The old reservation re-checks the limit when its send is made: two in the last minute.
    assert isinstance(await book.begin_proactive("early", 0, ALICE), Wait)


async def test_2023_mode_allows_four_proactive_a_month(db: Database) -> None:
    clock = VirtualClock(START)
    book = ledger(db, clock, platform_mode="2023")
    plans = [await proactive(book, f"p{n}") for n in range(5)]
    assert [type(p) for p in plans] == [Route] * 4 + [Undeliverable]
    await clock.advance(timedelta(days=31).total_seconds())
    assert isinstance(await proactive(book, "p5"), Route)


async def test_redelivered_inbound_message_keeps_its_budget(db: Database) -> None:
    book = ledger(db, VirtualClock(START))
    await book.record(message(ALICE, "m1", START))
    await book.plan("i1", 0, ALICE, "m1")
    await book.record(message(ALICE, "m1", START))  # the platform pushed it again
    assert await book.anchor_state("m1") == ("live", 1, 2)
