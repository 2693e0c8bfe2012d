"""`herald outbox list|show|retry` against a real database (both backends)."""

from __future__ import annotations

import asyncio
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


async def _seed(url: str) -> str:
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
    assert waiting.item_id
    return failed.item_id


def test_list_show_retry(db_url: str, tmp_path: Path) -> None:
    failed_id = asyncio.run(_seed(db_url))
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
