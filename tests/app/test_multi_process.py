"""Acceptance: two and three `herald` processes on one PostgreSQL database, each its own gateway
shard, SIGKILLed one after the other (the scheduler's leader among them) while users of private
chats and of guild channels keep writing and jobs keep firing. In the end every message was
answered exactly once and in order per conversation, and every job slot fired exactly once, with
none skipped (the slots that came due while no process led each fired late, once)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections import Counter
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select, text

from herald.core.clock import SystemClock
from herald.core.schedule import interval_schedule, next_after
from herald.scheduler import JobStore
from herald.sim.app import RunningSim, serve
from herald.sim.settings import SimSettings
from herald.store import Database
from herald.store.tables.outbox import OutboxItem
from tests.app.herald_harness import WAIT_S
from tests.sim_control import qq_toml

ROOT = Path(__file__).resolve().parents[2]
USERS = [f"mp-user-{i}" for i in range(4)]
# Guild ids whose shard ((id >> 22) % n) differs, so every process gets channel traffic.
CHANNELS = [(f"mp-chan-{i}", str((i + 1) << 22)) for i in range(4)]
WAVES = 6
JOB_EVERY_S = 2
TAG = re.compile(r"m\d+-\d+")


def conversations() -> list[tuple[str, str]]:
    """(scene, target) of every conversation, in the order messages are sent to them."""
    return [("c2c", user) for user in USERS] + [("channel", channel) for channel, _ in CHANNELS]


def write_config(path: Path, sim: RunningSim, db_url: str, instance: str, shard: tuple[int, int]) -> None:
    path.write_text(
        f"""
{qq_toml(sim)}shard = [{shard[0]}, {shard[1]}]

[qq.delivery]
c2c_reply_limit = 20

[storage]
url = "{db_url}"

[delivery]
instance = "{instance}"
lease_s = 10

[agent]
conversation_lease_s = 3

[scheduler]
leader_lease_s = 1.5

[limits]
user_messages_per_minute = 0
group_messages_per_minute = 0
max_waiting_per_conversation = 1000
""",
        encoding="utf-8",
    )


class Instance:
    def __init__(self, config: Path, record: Path) -> None:
        self.config = config
        self.record = record
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.app.scripted_herald", str(self.config), str(self.record),
            stdout=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        assert self.process.stdout is not None
        async with asyncio.timeout(WAIT_S):
            line = await self.process.stdout.readline()
        assert line.strip() == b"READY", line

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(WAIT_S):
                await self.process.wait()


async def delivered(http: aiohttp.ClientSession, sim: RunningSim, scene: str, target: str) -> list[str]:
    async with http.get(f"{sim.base_url}/_sim/transcript?scene={scene}&target={target}") as response:
        entries = (await response.json())["entries"]
    return [e["content"] for e in entries if e.get("direction") == "out" and e.get("status") == 200]


async def answered(http: aiohttp.ClientSession, sim: RunningSim) -> int:
    counts = [len(TAG.findall(" ".join(await delivered(http, sim, *c)))) for c in conversations()]
    return sum(counts)


async def until_answered(http: aiohttp.ClientSession, sim: RunningSim, count: int) -> None:
    async with asyncio.timeout(WAIT_S * 2):
        while await answered(http, sim) < count:  # noqa: ASYNC110 (other processes, over HTTP)
            await asyncio.sleep(0.1)


async def say(http: aiohttp.ClientSession, sim: RunningSim, wave: int) -> None:
    for n, (scene, target) in enumerate(conversations()):
        tag = f"m{n}-{wave}"
        if scene == "c2c":
            url, body = f"/_sim/c2c/{target}/messages", {"content": f"hello {tag}"}
        else:
            guild = dict(CHANNELS)[target]
            url = f"/_sim/channels/{target}/messages"
            body = {"guild_id": guild, "author_id": f"author-{n}", "content": f"hello {tag}"}
        async with http.post(sim.base_url + url, json=body) as response:
            assert response.status == 200


async def leader(db: Database) -> str | None:
    async with db.session() as session:
        holder = await session.scalar(
            text("SELECT holder FROM leases WHERE name = 'scheduler' AND expires_at >= clock_timestamp()")
        )
    return None if holder is None else str(holder)


async def job_items(db: Database, job_id: str) -> list[OutboxItem]:
    async with db.session() as session:
        rows = await session.scalars(
            select(OutboxItem)
            .where(OutboxItem.idempotency_key.like(f"job:{job_id}:%"))
            .order_by(OutboxItem.idempotency_key)
        )
        return list(rows)


@pytest.mark.parametrize("processes", [2, 3])
async def test_sigkills_across_instances_lose_and_repeat_nothing(
    db_url: str, tmp_path: Path, processes: int
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("several instances share a database only on PostgreSQL (SQLite is one process)")
    db = Database(db_url)
    await db.migrate()
    record = tmp_path / "calls.log"
    async with serve(SimSettings(port=0, c2c_reply_limit=20)) as sim, aiohttp.ClientSession() as http:
        instances: dict[str, Instance] = {}
        for i in range(processes):
            config = tmp_path / f"herald-{i}.toml"
            write_config(config, sim, db_url, f"mp-{i}", (i, processes))
            instances[f"mp-{i}"] = Instance(config, record)
        try:
            await asyncio.gather(*(instance.start() for instance in instances.values()))
            await say(http, sim, 0)
            await until_answered(http, sim, len(conversations()))

            # Jobs start once their users have written (a private chat is reached through a reply).
            store = JobStore(db, SystemClock())
            # Slots on whole seconds, so each item's key (to the second) names its slot exactly.
            now = datetime.now(UTC).replace(microsecond=0)
            jobs = [
                await store.create(
                    conversation=f"c2c:{user}",
                    creator_id=None,
                    name=f"tick-{i}",
                    schedule=interval_schedule(JOB_EVERY_S, "UTC", now),
                    action="send",
                    text=f"tick {i}",
                )
                for i, user in enumerate(USERS[:2])
            ]

            killed: Counter[str] = Counter()
            for wave in range(1, WAVES):
                await say(http, sim, wave)
                # Alternately the scheduler's leader and the process of shard 0 (every private chat).
                victim = await leader(db) if wave % 2 else "mp-0"
                victim = victim if victim in instances else "mp-0"
                await instances[victim].kill()
                killed[victim] += 1
                await instances[victim].start()
            await until_answered(http, sim, len(conversations()) * WAVES)

            # Every job fires again after the last kill: its slots go on.
            fired_before = {job.id: len(await job_items(db, job.id)) for job in jobs}
            async with asyncio.timeout(WAIT_S):
                for job in jobs:
                    while len(await job_items(db, job.id)) < fired_before[job.id] + 2:  # noqa: ASYNC110
                        await asyncio.sleep(0.2)
        finally:
            await asyncio.gather(*(instance.stop() for instance in instances.values()))

        assert sum(killed.values()) == WAVES - 1
        for n, (scene, target) in enumerate(conversations()):
            tags = [
                tag for content in await delivered(http, sim, scene, target) for tag in TAG.findall(content)
            ]
            assert tags == [f"m{n}-{wave}" for wave in range(WAVES)], (scene, target, tags)

        for i, job in enumerate(jobs):
            items = await job_items(db, job.id)
            ticks = [c for c in await delivered(http, sim, "c2c", USERS[i]) if c == f"tick {i}"]
            # Each slot's item is one row (its key is unique), delivered once.
            assert len(ticks) == len([item for item in items if item.state == "delivered"]), (ticks, items)
            slots = [
                datetime.strptime(str(item.idempotency_key).rsplit(":", 1)[1], "%Y%m%dT%H%M%S").replace(
                    tzinfo=UTC
                )
                for item in items
            ]
            # None skipped: a failover lasts seconds, far less than `catch_up_s`, so every slot
            # from the first to the last fired.
            for slot, following in pairwise(slots):
                assert following == next_after(job.schedule, slot), (slot, following, items)

    async with db.session() as session:
        unfinished = await session.scalar(text("select count(*) from agent_turns where status != 'done'"))
        undelivered = await session.scalar(
            # A job's last item may have been stored just before the processes stopped.
            text("select count(*) from outbox_items where state != 'delivered' and origin != 'job'")
        )
    await db.dispose()
    assert (unfinished, undelivered) == (0, 0)
