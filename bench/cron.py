"""How late 10,000 scheduled jobs fire: from each slot to the scheduler firing it, and to the
message arriving at the platform.

    .venv/bin/python bench/cron.py                          # SQLite, 10,000 jobs
    .venv/bin/python bench/cron.py --db postgresql
    .venv/bin/python bench/cron.py --jobs 2000 --interval 120 --seconds 60

`--jobs` jobs, each in its own private chat, each sending a fixed text every `--interval` seconds
(`/every`-style `send` jobs: no model is asked), their first slots spread evenly over one interval
from a minute after start: `jobs / interval` firings a second. They are stored before Herald starts,
as a database that has them would be. For `--seconds` Herald runs (in this process, on the real
clock, its scheduler and outbox as in `herald run`; the emulator in its own process, its rate
limits off), then prints the lateness of every firing in the window:

  scheduler   slot → the scheduler calling the job (the `herald_job_lateness_seconds` histogram's
              observations, kept here exactly)
  delivered   slot → the message's request at the emulator (its own clock: the same machine's)

Goal: p99 of `scheduler` ≤ 50 ms with 10,000 jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

import aiohttp
from common import APP_ID, SECRET, database, free_port, run_sim, wait_up
from pydantic import SecretStr
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from herald.app import Herald, ModelChoice
from herald.config import DeliveryConfig, HeraldConfig, QQConfig, QQDeliveryConfig, StorageConfig
from herald.core.clock import SystemClock
from herald.core.schedule import interval_schedule
from herald.scheduler import JobStore
from herald.store import Database

TEXT = "⏰ tick"


def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart("unused")])


def percentiles(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return (
        f"n={len(values)} p50={at(0.5):.1f} ms p99={at(0.99):.1f} ms max={ordered[-1] * 1000:.1f} ms "
        f"mean={statistics.fmean(values) * 1000:.1f} ms"
    )


async def store_jobs(url: str, count: int, interval_s: int, first: datetime) -> None:
    db = Database(url)
    await db.migrate()
    jobs = JobStore(db, SystemClock())
    step = interval_s / count
    try:
        for i in range(count):
            anchor = first + timedelta(seconds=i * step)
            await jobs.create(
                conversation=f"c2c:cron-{i:05d}",
                creator_id=f"cron-{i:05d}",
                name=f"tick {i}",
                schedule=interval_schedule(interval_s, "Asia/Shanghai", anchor),
                action="send",
                text=TEXT,
            )
            if i % 2000 == 1999:
                print(f"  {i + 1} jobs stored", flush=True)
    finally:
        await db.dispose()


async def delivered_lateness(
    http: aiohttp.ClientSession, base: str, slots: dict[str, list[float]]
) -> list[float]:
    async with http.get(f"{base}/_sim/requests") as resp:
        requests = (await resp.json())["requests"]
    late: list[float] = []
    for r in requests:
        path = r.get("path", "")
        if r.get("method") != "POST" or not path.startswith("/v2/users/cron-") or r.get("status") != 200:
            continue
        user = path.split("/")[3]
        times = slots.get(user)
        if not times:
            continue
        at = float(r["at"])
        due = [t for t in times if t <= at]
        if due:
            late.append(at - max(due))
    return late


async def main_async(args: argparse.Namespace, base: str) -> None:
    async with aiohttp.ClientSession() as http, database(args.db) as url:
        await wait_up(http, f"{base}/_sim/clock")
        first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=60)
        print(f"storing {args.jobs} jobs", flush=True)
        started = time.monotonic()
        await store_jobs(url, args.jobs, args.interval, first)
        print(f"  stored in {time.monotonic() - started:.1f} s", flush=True)
        config = HeraldConfig(
            qq=QQConfig(
                app_id=APP_ID,
                secret=SecretStr(SECRET),
                api_base=base,
                token_url=f"{base}/app/getAppAccessToken",
                delivery=QQDeliveryConfig(message_qps=1e9, c2c_bot_qps=1e9),
            ),
            storage=StorageConfig(url=url),
            delivery=DeliveryConfig(instance="bench"),
        )
        observed: list[tuple[float, float]] = []  # (when, lateness)
        herald = Herald(config, model=ModelChoice(FunctionModel(answer)), rate_limits=False)
        await herald.start()
        await herald.wait_ready()
        assert herald.scheduler is not None
        herald.scheduler.lateness = lambda seconds: observed.append((time.time(), seconds))
        wait = (first - datetime.now(UTC)).total_seconds()
        print(
            f"load {os.getloadavg()[0]:.2f}; first slot in {wait:.0f} s, measuring {args.seconds} s",
            flush=True,
        )
        await asyncio.sleep(max(0.0, wait) + args.seconds)
        window_end = first.timestamp() + args.seconds
        await asyncio.sleep(5)  # deliveries of the window's last firings
        await herald.stop()
        scheduler = [late for when, late in observed if when - late <= window_end]
        step = args.interval / args.jobs
        slots: dict[str, list[float]] = {}
        for i in range(args.jobs):
            t = first.timestamp() + i * step
            times = []
            while t <= window_end:
                times.append(t)
                t += args.interval
            slots[f"cron-{i:05d}"] = times
        delivered = await delivered_lateness(http, base, slots)
        expected = sum(len(times) for times in slots.values())
        print(f"jobs: {args.jobs}, firings due in the window: {expected}, {args.jobs / args.interval:.0f}/s")
        print(f"scheduler  {percentiles(scheduler)}")
        print(f"delivered  {percentiles(delivered)}")
        print(f"load after: {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--interval", type=int, default=600, help="seconds between a job's firings")
    parser.add_argument("--seconds", type=int, default=120, help="how long firings are measured")
    args = parser.parse_args()
    port = free_port()
    sim = multiprocessing.Process(
        target=run_sim,
        args=(port,),
        kwargs={"request_log_limit": 1_000_000, "rate_limits": False},
        daemon=True,
    )
    sim.start()
    try:
        asyncio.run(main_async(args, f"http://127.0.0.1:{port}"))
    finally:
        sim.terminate()
        sim.join(5)
    sys.exit(0)


if __name__ == "__main__":
    main()
