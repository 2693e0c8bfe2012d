"""The shared group commit (`Database.writes`): concurrent units share one commit, each caller
gets its own result only after it, a unit queued just as a flusher finishes still runs, and a
unit that fails (a constraint, a value the database refuses, its own exception) fails alone."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import cast

import pytest
from sqlalchemy import Table, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from herald.store import Database
from herald.store.batch import Work, defer_insert
from herald.store.tables.agent import AgentJob


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


def _deferred(job_id: str, note: str = "") -> Work:
    async def work(session: AsyncSession) -> str:
        defer_insert(session, JOBS, {**_JOB, "id": job_id, "note": note})
        return job_id

    return work


_JOB: dict[str, object] = {
    "conversation": "c2c:a",
    "name": "n",
    "kind": "once",
    "timezone": "UTC",
    "action": "agent",
    "active": True,
    "runs": 0,
    "created_at": datetime(2026, 1, 1, tzinfo=UTC),
}
JOBS = cast(Table, AgentJob.__table__)


async def _outcomes(db: Database, works: list[Work]) -> list[object]:
    async with asyncio.timeout(30):
        return list(await asyncio.gather(*(db.writes.run(work) for work in works), return_exceptions=True))


async def test_a_unit_that_violates_a_constraint_fails_alone(db: Database) -> None:
    await db.writes.run(_insert("taken"))
    works = [_insert(f"g{i}") for i in range(60)]
    works.insert(37, _insert("taken"))  # the same primary key again
    outcomes = await _outcomes(db, works)
    assert isinstance(outcomes.pop(37), IntegrityError)
    assert outcomes == [f"g{i}" for i in range(60)]
    assert await _count(db) == 61


async def test_a_deferred_insert_that_violates_a_constraint_fails_alone(db: Database) -> None:
    await db.writes.run(_deferred("taken"))
    works = [_deferred(f"g{i}") for i in range(60)]
    works.insert(5, _deferred("taken"))
    works.insert(50, _deferred("g7"))  # a duplicate within the batch itself
    outcomes = await _outcomes(db, works)
    assert isinstance(outcomes.pop(50), IntegrityError)
    assert isinstance(outcomes.pop(5), IntegrityError)
    assert outcomes == [f"g{i}" for i in range(60)]
    assert await _count(db) == 61


async def test_a_unit_that_raises_fails_alone(db: Database) -> None:
    async def broken(session: AsyncSession) -> None:
        await _insert("half-done")(session)
        raise RuntimeError("the unit's own bug")

    works = [_insert(f"g{i}") for i in range(20)]
    works.insert(3, broken)
    outcomes = await _outcomes(db, works)
    assert isinstance(outcomes.pop(3), RuntimeError)
    assert outcomes == [f"g{i}" for i in range(20)]
    assert await _count(db) == 20  # the failing unit's own write is rolled back


async def test_text_the_database_refuses_fails_only_its_unit(db: Database) -> None:
    # PostgreSQL refuses a NUL byte in a text column; neither backend can store a lone surrogate.
    works = [_deferred(f"g{i}", note=f"fine {i}") for i in range(40)]
    works.insert(11, _deferred("surrogate", note="bad \ud800"))
    works.insert(29, _deferred("nul", note="bad \x00 byte"))
    outcomes = await _outcomes(db, works)
    nul = outcomes.pop(29)
    assert isinstance(outcomes.pop(11), Exception)
    if db.is_postgresql:
        assert isinstance(nul, Exception)
        assert await _count(db) == 40
    else:
        assert nul == "nul"
        assert await _count(db) == 41
    assert outcomes == [f"g{i}" for i in range(40)]
    # The write path is healthy afterwards.
    assert await db.writes.run(_insert("after")) == "after"


def _run_once(job_id: str) -> Work:
    async def work(session: AsyncSession) -> None:
        await session.execute(text("UPDATE agent_jobs SET runs = runs + 1 WHERE id = :id"), {"id": job_id})

    return work


async def test_a_write_waits_for_a_session_holding_its_lock_without_stopping_the_loop(db: Database) -> None:
    # On SQLite the shared writer's statements run on the event loop. Here a session of the same
    # process holds the lock the write needs (SQLite's write lock, PostgreSQL's row lock): waiting
    # for it on the loop would stop the very task that is to commit it, so the write must wait
    # elsewhere, then go through.
    async with asyncio.timeout(20):
        await db.writes.run(_insert("j"))
        async with db.session() as session:
            await _run_once("j")(session)
            writing = asyncio.create_task(db.writes.run(_run_once("j")))
            await asyncio.sleep(0.2)
            assert not writing.done()
            await session.commit()
        await writing
    async with db.engine.connect() as conn:
        runs = (await conn.execute(text("SELECT runs FROM agent_jobs WHERE id = 'j'"))).scalar_one()
    assert runs == 2
