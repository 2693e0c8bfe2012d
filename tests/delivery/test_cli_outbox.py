"""`herald outbox list|show|retry|cancel` against a real database (both backends)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update
from typer.testing import CliRunner

import herald.cli.outbox  # noqa: F401  (registers the command group)
from herald.cli import app
from herald.core.clock import SystemClock
from herald.core.segments import Text
from herald.core.target import Scene, Target
from herald.delivery.outbox import Outbox
from herald.store.db import Database
from herald.store.tables.outbox import OutboxItem


class _NoPlatform:
    name = "none"


async def _seed(url: str) -> tuple[str, str]:
    """(the failed item, the pending one)"""
    db = Database(url)
    await db.migrate()
    outbox = Outbox(db, _NoPlatform(), SystemClock())  # type: ignore[arg-type]
    target = Target(Scene.C2C, "u1")
    waiting = await outbox.enqueue(target, [Text("still waiting")], origin="job:1")
    failed = await outbox.enqueue(target, [Text("refused")], origin="agent:tool")
    async with db.session() as session:
        await session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == failed.item_id)
            .values(state="failed", code=40054013, reason="用户拒收消息")
        )
        await session.commit()
    await db.dispose()
    return failed.item_id, waiting.item_id


def test_list_show_retry(db_url: str, tmp_path: Path) -> None:
    failed_id, _ = asyncio.run(_seed(db_url))
    config = tmp_path / "herald.toml"
    config.write_text(f'[storage]\nurl = "{db_url}"\n')
    runner = CliRunner()

    listed = runner.invoke(app, ["outbox", "list", "--config", str(config)])
    assert listed.exit_code == 0, listed.output
    assert "40054013" in listed.output and "pending" in listed.output and "failed" in listed.output

    shown = runner.invoke(app, ["outbox", "show", failed_id[:8], "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    assert '"code": 40054013' in shown.output and "refused" in shown.output

    retried = runner.invoke(app, ["outbox", "retry", failed_id, "--config", str(config)])
    assert retried.exit_code == 0, retried.output
    only_failed = runner.invoke(app, ["outbox", "list", "-s", "failed", "--config", str(config)])
    assert failed_id[:8] not in only_failed.output
    again = runner.invoke(app, ["outbox", "retry", failed_id, "--config", str(config)])
    assert again.exit_code == 1


async def _hold(url: str, item_id: str) -> None:
    """An instance holds the item right now (its request may be on the wire)."""
    db = Database(url)
    async with db.session() as session:
        await session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == item_id)
            .values(claimed_by="other", lease_until=datetime.now(UTC) + timedelta(minutes=5))
        )
        await session.commit()
    await db.dispose()


def test_cancel_ends_a_pending_item_unsent_but_never_one_being_sent(db_url: str, tmp_path: Path) -> None:
    failed_id, pending_id = asyncio.run(_seed(db_url))
    config = tmp_path / "herald.toml"
    config.write_text(f'[storage]\nurl = "{db_url}"\n')
    runner = CliRunner()

    not_pending = runner.invoke(app, ["outbox", "cancel", failed_id[:8], "--config", str(config)])
    assert not_pending.exit_code == 1 and "only pending items" in not_pending.output

    asyncio.run(_hold(db_url, pending_id))
    in_flight = runner.invoke(app, ["outbox", "cancel", pending_id[:8], "--config", str(config)])
    assert in_flight.exit_code == 1 and "being sent right now" in in_flight.output

    asyncio.run(_hold_expired(db_url, pending_id))
    cancelled = runner.invoke(app, ["outbox", "cancel", pending_id[:8], "--config", str(config)])
    assert cancelled.exit_code == 0, cancelled.output
    shown = runner.invoke(app, ["outbox", "show", pending_id[:8], "--config", str(config)])
    assert '"state": "dead"' in shown.output and "cancelled by the operator" in shown.output


async def _hold_expired(url: str, item_id: str) -> None:
    """The instance that held it is gone (its lease ran out)."""
    db = Database(url)
    async with db.session() as session:
        await session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == item_id)
            .values(lease_until=datetime.now(UTC) - timedelta(minutes=1))
        )
        await session.commit()
    await db.dispose()
