"""The sending side at its edges, against the sim over sockets on SQLite and PostgreSQL: a send
whose outcome is unknown is never resent (invariant 9), proactive limits as the platform counts
them (invariant 10), one error table, no doomed request per stale anchor, and an operator's retry
of a failed proactive item."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update

from herald.config import DeliveryConfig, QQDeliveryConfig
from herald.core.errors import DeliveryError, ErrorKind
from herald.core.platform import SendRequest
from herald.core.segments import Markdown, Text
from herald.core.target import Scene, Target
from herald.delivery.inspect import retry
from herald.qq.errors import CODES
from herald.qq.reply import DeliveryMode
from herald.qq.tables import ReplyAnchor, ReplyReservation
from herald.store.db import Database
from herald.store.tables.outbox import OutboxItem
from tests.delivery.harness import stack

ALICE = Target(Scene.C2C, "alice")


async def _crash_after_the_platform_took_it(db: Database) -> None:
    """What a SIGKILL between the platform's answer and Herald writing it down leaves behind."""
    async with db.session() as session:
        await session.execute(update(ReplyReservation).values(sent_id=None))
        await session.commit()


async def _send_fails(herald_send: object, request: SendRequest) -> DeliveryError:
    try:
        await herald_send(request)  # type: ignore[operator]
    except DeliveryError as error:
        return error
    raise AssertionError("the send went out")


# --- item 2 / invariant 9: no duplicate proactive sends --------------------------------------


async def test_a_proactive_send_that_may_have_arrived_is_not_resent(db: Database) -> None:
    async with stack(db) as herald:
        request = SendRequest("push-1", ALICE, (Text("once"),))
        first = await herald.platform.send(request)
        assert first.route == DeliveryMode.PROACTIVE
        await _crash_after_the_platform_took_it(db)

        error = await _send_fails(
            herald.platform.send, SendRequest("push-1", ALICE, (Text("once"),), attempt=2)
        )

        assert error.kind is ErrorKind.OUTCOME_UNKNOWN and "not resent" in error.reason
        assert [e["content"] for e in await herald.control.delivered("c2c", "alice")] == ["once"]
        assert len(await herald.control.outbound("c2c", "alice")) == 1


async def test_a_proactive_send_refused_with_an_answer_is_tried_again(db: Database) -> None:
    # The platform answered "no": it did not take it, so a later attempt may send it.
    async with stack(db) as herald:
        await herald.control.fail_next(1, 500, 50055001)
        error = await _send_fails(herald.platform.send, SendRequest("push-2", ALICE, (Text("hi"),)))
        assert error.kind is ErrorKind.RETRY_LATER
        sent = await herald.platform.send(SendRequest("push-2", ALICE, (Text("hi"),), attempt=2))
        assert sent.route == DeliveryMode.PROACTIVE
        assert [e["content"] for e in await herald.control.delivered("c2c", "alice")] == ["hi"]


async def test_a_passive_resend_on_a_dead_anchor_is_not_replanned(db: Database) -> None:
    # The first attempt arrived unanswered; by the retry the platform no longer knows the anchor,
    # so its (msg_id, msg_seq) dedup can't say "already delivered" and a new route could duplicate.
    async with stack(db) as herald:
        message = await herald.user_says("alice")
        request = SendRequest("reply-1", ALICE, (Text("answer"),), trigger_id=message.message_id)
        await herald.platform.send(request)
        await _crash_after_the_platform_took_it(db)
        await herald.control.call("POST", "/_sim/reset", {})

        retried = SendRequest("reply-1", ALICE, (Text("answer"),), trigger_id=message.message_id, attempt=2)
        error = await _send_fails(herald.platform.send, retried)

        assert error.kind is ErrorKind.OUTCOME_UNKNOWN
        assert [e["code"] for e in await herald.control.outbound("c2c", "alice")] == [40034024]


async def test_a_passive_resend_past_the_window_is_deduplicated_not_duplicated(db: Database) -> None:
    async with stack(db) as herald:
        message = await herald.user_says("alice")
        request = SendRequest("reply-2", ALICE, (Text("answer"),), trigger_id=message.message_id)
        await herald.platform.send(request)
        await _crash_after_the_platform_took_it(db)
        await herald.advance(3600)
        retried = SendRequest("reply-2", ALICE, (Text("answer"),), trigger_id=message.message_id, attempt=2)
        await herald.platform.send(retried)
        assert [e["content"] for e in await herald.control.delivered("c2c", "alice")] == ["answer"]


# --- item 3: one error table -----------------------------------------------------------------


def test_every_code_set_is_a_column_of_the_one_table() -> None:
    spent = {code for code, row in CODES.items() if row.anchor == "spent"}
    invalid = {code for code, row in CODES.items() if row.anchor == "invalid"}
    assert spent == {40034005, 40034128, 304027, 304103}
    assert {40034024, 40034025, 40034026, 40034027, 50045, 304026, 304028} == invalid
    assert all(CODES[code].kind is ErrorKind.REPLAN for code in spent | invalid)
    assert {c for c, row in CODES.items() if row.proactive_refused} == {40034105, 40034102, 40054013}
    assert {c for c, row in CODES.items() if row.markdown_refused} == {304036, 40034127, 40034124, 40034011}


async def test_50037_is_our_request_shape_not_a_target_refusing_markdown(db: Database) -> None:
    # The platform's 50037: "markdown may only be combined with keyboard" (markdown with content).
    async with stack(db) as herald:
        message = await herald.user_says("alice")
        await herald.control.fail_next(1, 400, 50037)
        refused = await (
            await herald.outbox.enqueue(ALICE, [Markdown("**a**")], origin="t", trigger_id=message.message_id)
        )
        assert not refused.delivered and refused.code == 50037
        assert not await herald.platform.targets.markdown_refused(ALICE)
        sent = await (
            await herald.outbox.enqueue(ALICE, [Markdown("**b**")], origin="t", trigger_id=message.message_id)
        )
        assert sent.delivered
        # The refused item's failure notice (text), then the next markdown item, still as markdown.
        assert [e["msg_type"] for e in await herald.control.delivered("c2c", "alice")] == [0, 2]


# --- issue 9 item 4: no doomed request per stale anchor ---------------------------------------


async def test_a_platform_that_forgot_its_anchors_refuses_one_request_not_one_per_anchor(
    db: Database,
) -> None:
    async with stack(db) as herald:
        for n in range(6):
            await herald.user_says("alice", f"m{n}")
        await herald.control.call("POST", "/_sim/reset", {})

        result = await (await herald.outbox.enqueue(ALICE, [Text("beat")], origin="job:1"))

        assert result.delivered and result.sent is not None
        assert result.sent.route == DeliveryMode.PROACTIVE
        attempts = await herald.control.outbound("c2c", "alice")
        assert [e["code"] for e in attempts] == [40034024, 0]
        async with db.session() as session:
            states = (await session.scalars(select(ReplyAnchor.state))).all()
        assert set(states) == {"invalid"}


# --- item 5: an operator's retry of a failed proactive item -----------------------------------


async def test_retrying_a_failed_proactive_item_reuses_its_reservation(db: Database) -> None:
    async with stack(db) as herald:
        await herald.control.fail_next(1, 400, 50006)
        failed = await (await herald.outbox.enqueue(ALICE, [Text("push")], origin="job:1"))
        assert not failed.delivered
        async with db.session() as session:
            item = (await session.scalars(select(OutboxItem).where(OutboxItem.origin == "job:1"))).one()

        assert await retry(db, item.id, datetime.now(UTC), 1800)
        for _ in range(200):
            async with db.session() as session:
                row = (await session.scalars(select(OutboxItem).where(OutboxItem.id == item.id))).one()
            if row.state not in ("pending", "sending"):
                break
            await herald.advance(1)
        assert row.state == "delivered", (row.state, row.reason)
        # On its first attempt after the retry: no second reservation insert failed its commit
        # (which rolled back every other unit of the same group commit).
        assert row.attempts == 1
        delivered = [e["content"] for e in await herald.control.delivered("c2c", "alice")]
        assert delivered == [DeliveryConfig().failure_notice, "push"]  # the failure's notice, then the retry


# --- item 3 / invariant 10: rate limits as the platform counts them ---------------------------


async def test_a_proactive_send_is_counted_when_made_after_a_crash(db: Database) -> None:
    rules = QQDeliveryConfig(proactive_per_target_per_minute=3)
    async with stack(db, rules=rules, rate_limits=True) as herald:
        await herald.control.settings(c2c_per_user_per_minute=3)
        await herald.advance(2)  # past the per-second windows a fresh start assumes full
        for n in range(2):
            assert (await (await herald.outbox.enqueue(ALICE, [Text(f"early{n}")], origin="job:1"))).delivered
        # An attempt that reserved its route and crashed before the request...
        await herald.platform.ledger.plan("crashed", 0, ALICE, None)
        await herald.advance(50)
        # ...is made 50 s later by the next attempt: the platform counts it then.
        await herald.platform.send(SendRequest("crashed", ALICE, (Text("late"),), attempt=2))
        await herald.advance(11)

        receipts = [await herald.outbox.enqueue(ALICE, [Text(f"p{n}")], origin="job:1") for n in range(3)]
        for _ in range(60):
            if all(r.done for r in receipts):
                break
            await herald.advance(5)
        results = [await r for r in receipts]

        assert all(r.delivered for r in results)
        codes = [e["code"] for e in await herald.control.outbound("c2c", "alice")]
        assert 40034100 not in codes and codes == [0] * 6
