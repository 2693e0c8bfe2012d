"""The shared group commit (`Database.writes`): concurrent units share one commit, each caller
gets its own result only after it, and a unit queued just as a flusher finishes still runs."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from herald.store import Database
from herald.store.batch import Work


async def _count(db: Database) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM agent_jobs"))).scalar_one())


def _insert(job_id: str) -> Work:
    async def work(session: AsyncSession) -> str:
        await session.execute(
            text(
                "INSERT INTO agent_jobs (id, conversation, name, kind, timezone, action, note, active, "
                "runs, created_at) VALUES (:id, 'c2c:a', 'n', 'once', 'UTC', 'agent', '', true, 0, "
                "'2026-01-01 00:00:00')"
            ),
            {"id": job_id},
        )
        return job_id

    return work


async def test_back_to_back_units_each_run_and_commit(db: Database) -> None:
    # Each unit is queued right after the previous one's result, as its flusher is ending.
    async with asyncio.timeout(10):
        for i in range(20):
            assert await db.writes.run(_insert(f"j{i}")) == f"j{i}"
    assert await _count(db) == 20


async def test_concurrent_units_share_commits_and_a_failure_fails_only_its_batch(db: Database) -> None:
    async with asyncio.timeout(10):
        results = await asyncio.gather(*(db.writes.run(_insert(f"c{i}")) for i in range(50)))
        assert sorted(results) == sorted(f"c{i}" for i in range(50))
        with pytest.raises(Exception):  # noqa: B017 (the driver's IntegrityError)
            await db.writes.run(_insert("c0"))
        assert await db.writes.run(_insert("after")) == "after"
    assert await _count(db) == 51
