"""Acceptance 4 and invariant 5: SIGKILL the delivering process at random points, restart it, and
every message still arrives exactly once, in order per conversation (the sim's transcript proves it)."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
from pathlib import Path

import pytest

from herald.core.clock import SystemClock
from herald.core.segments import Text
from herald.core.target import Scene, Target
from herald.delivery.outbox import Outbox
from herald.store.db import Database
from tests.delivery.harness import stack
from tests.sim_control import SimControl

WORKER = Path(__file__).with_name("crash_worker.py")


async def _arrived(control: SimControl) -> int:
    """Messages the emulator accepted (a resend of an arrived one is refused 40054005, not counted)."""
    return sum(
        1
        for r in await control.requests()
        if r["method"] == "POST" and r["path"].endswith("/messages") and r["status"] == 200
    )


async def _run_worker(control: SimControl, args: list[str], kill_after: int | None) -> int | None:
    """Run the worker to the end, or SIGKILL it once `kill_after` more of its messages have arrived.

    The kill point is a point in the worker's work as the emulator's request log shows it, not a
    moment in time: however slowly a loaded machine starts the process, the kill comes after its
    sends began, while others are in flight.
    """
    process = await asyncio.create_subprocess_exec(sys.executable, str(WORKER), *args)
    async with asyncio.timeout(300):
        if kill_after is None:
            return await process.wait()
        target = await _arrived(control) + kill_after
        while await _arrived(control) < target:
            if process.returncode is not None:
                return process.returncode  # nothing left to deliver before the kill point
            await asyncio.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        await process.wait()
    return None


@pytest.mark.slow
@pytest.mark.parametrize(("conversations", "per_conversation", "kills"), [(50, 20, 10)])
async def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    db: Database, db_url: str, conversations: int, per_conversation: int, kills: int
) -> None:
    await _crash_run(db, db_url, conversations, per_conversation, kills, seed=4)


async def test_sigkill_small(db: Database, db_url: str) -> None:
    # A slow send rate (20/s): after each kill point at least a second of sends is still pending.
    await _crash_run(db, db_url, conversations=6, per_conversation=8, kills=3, seed=7, qps=20)


async def _crash_run(
    db: Database,
    db_url: str,
    conversations: int,
    per_conversation: int,
    kills: int,
    seed: int,
    qps: int = 100,
) -> None:
    rng = random.Random(seed)
    users = [f"crash-{i:03d}" for i in range(conversations)]
    async with stack(db, clock=SystemClock()) as herald:  # the worker runs on the real clock
        # Enough user messages that every send can be passive: a resend after a crash then reuses
        # its reserved (msg_id, msg_seq) and the platform's dedup answers 40054005.
        for user in users:
            for _ in range((per_conversation + 3) // 4):
                await herald.user_says(user)
        await herald.outbox.stop()
        queue = Outbox(db, herald.platform, herald.clock)  # never started: enqueue only
        for n in range(per_conversation):
            for user in users:
                await queue.enqueue(Target(Scene.C2C, user), [Text(f"{user} #{n}")], origin="test")

        s = herald.sim.state.settings
        args = [db_url, herald.sim.base_url, herald.sim.token_url, s.app_id, s.secret, str(qps)]
        total = conversations * per_conversation
        progress = []
        for _ in range(kills):
            # A random point in the first quarter of what is left, so every kill leaves work behind.
            left = total - await _arrived(herald.control)
            await _run_worker(herald.control, args, kill_after=rng.randint(1, max(1, left // 4)))
            progress.append(await _arrived(herald.control))
        # The kills really landed mid-delivery (otherwise this test would prove nothing).
        assert any(0 < done < total for done in progress), progress
        assert await _run_worker(herald.control, args, kill_after=None) == 0

        for user in users:
            delivered = [e["content"] for e in await herald.control.delivered("c2c", user)]
            assert delivered == [f"{user} #{n}" for n in range(per_conversation)], user
        # Resends after a crash were answered "already delivered", never with a dead anchor.
        codes = {r["code"] for r in await herald.control.requests()} - {None, 0}
        assert codes <= {40054005}, codes
