"""End-to-end durable deliveries per second: Outbox + QQPlatform against `herald sim` over sockets.

    .venv/bin/python bench/outbox.py --db sqlite --messages 5000 --targets 500
    .venv/bin/python bench/outbox.py --db postgresql --messages 5000 --targets 500
    .venv/bin/python bench/outbox.py --db sqlite --rate-limits --messages 5000 --targets 500

The sim runs in its own process (so it does not share this event loop). Without `--rate-limits`
the sim's and Herald's rate limits are off, measuring raw capacity; with it both are on and the
run measures how close Herald gets to the platform's ceiling (100 message sends/s per endpoint)
without provoking a single rate-limit error. Every message is passive on a user message injected
at the sim (4 replies per anchor), so nothing is limited by proactive quotas.

`--profile` prints where the time goes (cProfile, by cumulative time, top entries).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import multiprocessing
import pstats
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from common import APP_ID, SECRET, database, free_port, run_sim
from pydantic import SecretStr

from herald.config import DeliveryConfig, QQConfig
from herald.core.clock import SystemClock
from herald.core.events import InboundMessage
from herald.core.segments import Text
from herald.core.target import Scene, Target
from herald.delivery.outbox import Outbox
from herald.qq.adapter import QQPlatform
from herald.store.db import Database


def _sim_settings(rate_limits: bool) -> dict[str, Any]:
    settings: dict[str, Any] = {"rate_limits": rate_limits, "request_log_limit": 200_000}
    if not rate_limits:
        settings["endpoint_qps"] = {}
    return settings


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    sim = multiprocessing.Process(
        target=run_sim, args=(port,), kwargs=_sim_settings(args.rate_limits), daemon=True
    )
    sim.start()
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http, database(args.db) as url:
            for _ in range(200):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(base + "/_sim/clock") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.05)
            return await _measure(args, base, http, url, sim.pid)
    finally:
        sim.terminate()
        sim.join()


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process (Linux /proc), in seconds."""
    import os

    fields = Path(f"/proc/{pid or os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(
    args: argparse.Namespace, base: str, http: aiohttp.ClientSession, url: str, sim_pid: int | None
) -> dict[str, Any]:
    db = Database(url)
    await db.migrate()
    clock = SystemClock()
    config = DeliveryConfig(max_concurrent_conversations=args.concurrency, instance="bench")
    platform = QQPlatform(
        QQConfig(
            app_id=APP_ID,
            secret=SecretStr(SECRET),
            api_base=base,
            token_url=base + "/app/getAppAccessToken",
        ),
        db,
        clock,
        rate_limits=args.rate_limits,
    )
    await platform.connect()
    targets = [Target(Scene.C2C, f"bench-{i:05d}") for i in range(args.targets)]
    per_target = -(-args.messages // args.targets)
    anchors_per_target = -(-per_target // 4)
    # Anchors: user messages injected at the sim, recorded as the gateway would have.
    for target in targets:
        for _ in range(anchors_per_target):
            async with http.post(f"{base}/_sim/c2c/{target.id}/messages", json={"content": "hi"}) as resp:
                injected = await resp.json()
            await platform.ledger.record(
                InboundMessage(target, injected["msg_id"], target.id, "hi", clock.now())
            )

    outbox = Outbox(db, platform, clock, config=config)
    started = time.perf_counter()
    # Many producers at once (agent turns, jobs), as in a busy deployment.
    receipts = await asyncio.gather(
        *(
            outbox.enqueue(targets[n % len(targets)], [Text(f"message {n}")], origin="bench")
            for n in range(args.messages)
        )
    )
    enqueued = time.perf_counter()
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    herald_cpu, sim_cpu = _cpu_seconds(None), _cpu_seconds(sim_pid)
    await outbox.start()
    results = [await receipt for receipt in receipts]
    finished = time.perf_counter()
    herald_cpu, sim_cpu = _cpu_seconds(None) - herald_cpu, _cpu_seconds(sim_pid) - sim_cpu
    if profiler:
        profiler.disable()
    await outbox.stop()
    await platform.stop()
    await db.dispose()

    async with http.get(f"{base}/_sim/requests") as resp:
        log = await resp.json()
    sends = [r for r in log["requests"] if r["path"].endswith("/messages") and r["method"] == "POST"]
    rate_limited = [r for r in sends if r["status"] == 429 or r["code"] in (50002, 40034100)]
    delivered = sum(1 for r in results if r.delivered)
    report = {
        "db": args.db,
        "rate_limits": args.rate_limits,
        "messages": args.messages,
        "targets": args.targets,
        "delivered": delivered,
        "enqueue_per_s": round(args.messages / (enqueued - started), 1),
        "deliver_per_s": round(delivered / (finished - enqueued), 1),
        "end_to_end_per_s": round(delivered / (finished - started), 1),
        "deliver_wall_ms_per_msg": round(1000 * (finished - enqueued) / max(delivered, 1), 3),
        "herald_cpu_ms_per_msg": round(1000 * herald_cpu / max(delivered, 1), 3),
        "sim_cpu_ms_per_msg": round(1000 * sim_cpu / max(delivered, 1), 3),
        "rate_limit_errors": len(rate_limited),
        "send_requests": len(sends),
    }
    if profiler:
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats(args.sort).print_stats(35)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--targets", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=256, help="conversations delivering at once")
    parser.add_argument("--rate-limits", action="store_true", help="sim and client limits on")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime", help="profile order: tottime or cumulative")
    args = parser.parse_args()
    report = asyncio.run(bench(args))
    for key, value in report.items():
        print(f"{key:>20}: {value}")


if __name__ == "__main__":
    main()
