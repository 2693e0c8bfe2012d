"""Several Herald processes on one PostgreSQL database: throughput against one process, and the
scheduler's failover when its leader is SIGKILLed.

    python bench/multi.py throughput --users 40 --messages 10      # 1 process, then 2
    python bench/multi.py failover --kills 20                      # 2 processes, a job every second

Herald runs as `tests.app.scripted_herald` (the scripted model in process, so the numbers are
Herald's, not a model server's); the emulator runs in its own process. Throughput: every user is
a guild channel, its guild chosen so the channels spread evenly over the shards (the platform
shards guild events by guild id), and sends `--messages` messages at once; the clock runs from the
first message sent until every one is answered. Printed: messages/s, lost (never answered),
duplicated (answered twice), out of order (conversations whose answers came in another order).
Herald's own window on sends per second is lifted (`message_qps`), as the emulator's rates are:
the figures are Herald's, not the platform's cap (which the live processes share; see
docs/deploy.md).

Failover: a job fires every second; the leader (the `scheduler` lease's holder) is SIGKILLed, the
time until the next slot is fired (its outbox item stored) by another process is measured, then
the killed process is started again. Printed: failover times (max, median), slots fired twice
(delivered twice to the user) and slots skipped.

The machine's load (`uptime`) is printed with the numbers: other work on the same cores skews them.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import database, free_port, qq_toml, run_sim

from herald.core.clock import SystemClock
from herald.core.schedule import interval_schedule, next_after
from herald.scheduler import JobStore
from herald.store import Database
from herald.store.tables.outbox import OutboxItem

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 300.0
TAG = re.compile(r"m(\d+)-(\d+)")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_s() -> dict[int, float]:
    """CPU seconds of every PostgreSQL process (server and backends) by pid: the database's share
    of the two cores is part of what a second Herald process competes with."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found[int(entry.name)] = cpu_s(int(entry.name))
            except OSError:  # the process ended meanwhile
                continue
    return found


async def database_work(db: Database) -> dict[str, int]:
    """PostgreSQL's counters for the bench's database: transactions and rows touched."""
    async with db.session() as session:
        row = (
            await session.execute(
                text(
                    "select xact_commit + xact_rollback, tup_fetched, tup_inserted, tup_updated,"
                    " tup_deleted from pg_stat_database where datname = current_database()"
                )
            )
        ).one()
    names = ("transactions", "fetched", "inserted", "updated", "deleted")
    return dict(zip(names, map(int, row), strict=True))


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def write_config(path: Path, base: str, db_url: str, instance: str, shard: tuple[int, int]) -> None:
    path.write_text(
        f"""
{qq_toml(base)}shard = [{shard[0]}, {shard[1]}]

[qq.delivery]
c2c_reply_limit = 20
# The emulator runs without the platform's rates: with the platform's 100 sends/s per endpoint,
# counted per process, one process was held at exactly 100 answers/s and two at 200.
message_qps = 100000

[storage]
url = "{db_url}"

[delivery]
instance = "{instance}"
lease_s = 10

[agent]
conversation_lease_s = 5

[scheduler]
leader_lease_s = 3

[limits]
user_messages_per_minute = 0
group_messages_per_minute = 0
max_waiting_per_conversation = 1000
max_concurrent_turns = 256
""",
        encoding="utf-8",
    )


class Process:
    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.app.scripted_herald", str(self.config), "/dev/null",
                stdout=asyncio.subprocess.PIPE, stderr=log, env=env,
            )  # fmt: skip
        assert self.process.stdout is not None
        async with asyncio.timeout(WAIT_S):
            line = await self.process.stdout.readline()
        if line.strip() != b"READY":
            raise RuntimeError(f"herald did not start: {line!r}; see {self.log}")

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await self.process.wait()


class Sim:
    def __init__(self, **settings: Any) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = multiprocessing.Process(
            target=run_sim, args=(self.port,), kwargs=settings, daemon=True
        )
        self.http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Sim:
        self.process.start()
        self.http = aiohttp.ClientSession()
        async with asyncio.timeout(30):
            while True:
                try:
                    async with self.http.get(f"{self.base}/_sim/settings"):
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.http is not None
        await self.http.close()
        self.process.terminate()
        self.process.join()

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        assert self.http is not None
        async with self.http.request(method, self.base + path, json=body) as response:
            return await response.json(content_type=None)

    async def out(self, scene: str, target: str) -> list[str]:
        entries = (await self.call("GET", f"/_sim/transcript?scene={scene}&target={target}"))["entries"]
        return [e["content"] for e in entries if e.get("direction") == "out" and e.get("status") == 200]


async def start_all(processes: list[Process]) -> None:
    await asyncio.gather(*(p.start() for p in processes))


async def throughput_run(count: int, users: int, messages: int, work: Path) -> dict[str, Any]:
    async with database("postgresql") as db_url:
        db = Database(db_url)
        await db.migrate()
        await db.dispose()
        settings = {"rate_limits": False, "gateway_shards": count, "gateway_max_concurrency": count}
        async with Sim(**settings) as sim:
            processes = []
            for i in range(count):
                config = work / f"tp-{count}-{i}.toml"
                write_config(config, sim.base, db_url, f"tp-{i}", (i, count))
                processes.append(Process(config, work / f"tp-{count}-{i}.log"))
            try:
                await start_all(processes)
                # Guild k is on shard k % count: channels spread evenly.
                channels = [(f"bench-chan-{u}", str((u + 1) << 22)) for u in range(users)]
                pids = {
                    f"herald-{i}": p.process.pid for i, p in enumerate(processes) if p.process is not None
                }
                assert sim.process.pid is not None
                pids["sim"] = sim.process.pid
                pids["bench"] = os.getpid()
                cpu_before = {name: cpu_s(pid) for name, pid in pids.items()}
                postgres_before = postgres_cpu_s()
                work_before = await database_work(db)
                started = time.perf_counter()
                for k in range(messages):
                    await asyncio.gather(
                        *(
                            sim.call(
                                "POST",
                                f"/_sim/channels/{channel}/messages",
                                {"guild_id": guild, "author_id": f"a{u}", "content": f"hi m{u}-{k}"},
                            )
                            for u, (channel, guild) in enumerate(channels)
                        )
                    )
                want = 2 * messages  # each message in, its answer out
                async with asyncio.timeout(WAIT_S):
                    while True:
                        listed = (await sim.call("GET", "/_sim/conversations"))["conversations"]
                        done = sum(min(c["entries"], want) for c in listed if c["scene"] == "channel")
                        if done >= want * users:
                            break
                        await asyncio.sleep(0.05)
                elapsed = time.perf_counter() - started
                cpu = {name: round(cpu_s(pid) - cpu_before[name], 2) for name, pid in pids.items()}
                postgres_after = postgres_cpu_s()
                cpu["postgresql"] = round(
                    sum(t - postgres_before.get(pid, 0.0) for pid, t in postgres_after.items()), 2
                )
                # Read after the clock stopped; pg_stat_database lags up to a second behind.
                await asyncio.sleep(1.0)
                work_after = await database_work(db)
                await db.dispose()
            finally:
                await asyncio.gather(*(p.stop() for p in processes))
            lost = duplicated = disordered = 0
            for u, (channel, _) in enumerate(channels):
                tags = [
                    (int(a), int(b))
                    for content in await sim.out("channel", channel)
                    for a, b in TAG.findall(content)
                ]
                seen = Counter(tags)
                lost += sum(1 for k in range(messages) if seen[(u, k)] == 0)
                duplicated += sum(n - 1 for n in seen.values() if n > 1)
                disordered += int([b for _, b in tags] != sorted(b for _, b in tags))
    total = users * messages
    return {
        "processes": count,
        "messages": total,
        "seconds": round(elapsed, 2),
        "per_s": round(total / elapsed, 1),
        "lost": lost,
        "duplicated": duplicated,
        "out_of_order": disordered,
        "cpu_s": cpu,
        "cpu_ms_per_message": round(1000 * sum(cpu.values()) / total, 2),
        "database_per_message": {k: round((work_after[k] - work_before[k]) / total, 1) for k in work_after},
        "load": load(),
    }


async def throughput(args: argparse.Namespace) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before the run)
    results = []
    for count in (1, 2):
        result = await throughput_run(count, args.users, args.messages, work)
        results.append(result)
        print(result, flush=True)
    one, two = results
    print(f"two processes / one: {two['per_s'] / one['per_s']:.2f}x (goal >= 1.7x)")
    # What two cores allow: every process on the machine (Herald, the emulator, the bench,
    # PostgreSQL) shares them, so no run can pass 2 cores / (CPU per message).
    ceiling = 2000 / one["cpu_ms_per_message"]
    print(
        f"ceiling on two cores at the one-process run's {one['cpu_ms_per_message']} ms CPU per message"
        f" (all processes): {ceiling:.0f} messages/s = {ceiling / one['per_s']:.2f}x one process"
    )


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


async def failover(args: argparse.Namespace) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before the run)
    async with database("postgresql") as db_url:
        db = Database(db_url)
        await db.migrate()
        async with Sim(
            rate_limits=False, gateway_shards=args.processes, gateway_max_concurrency=args.processes
        ) as sim:
            processes: dict[str, Process] = {}
            for i in range(args.processes):
                config = work / f"fo-{i}.toml"
                write_config(config, sim.base, db_url, f"fo-{i}", (i, args.processes))
                processes[f"fo-{i}"] = Process(config, work / f"fo-{i}.log")
            times: list[float] = []
            try:
                await start_all(list(processes.values()))
                await sim.call("POST", "/_sim/c2c/fo-user/messages", {"content": "hello"})
                job = await JobStore(db, SystemClock()).create(
                    conversation="c2c:fo-user",
                    creator_id=None,
                    name="tick",
                    # Whole seconds, so each item's key (to the second) names its slot exactly.
                    schedule=interval_schedule(1, "UTC", datetime.now(UTC).replace(microsecond=0)),
                    action="send",
                    text="tick",
                )
                for _ in range(args.kills):
                    async with asyncio.timeout(WAIT_S):
                        while (holder := await leader(db)) is None or len(await job_items(db, job.id)) < 2:  # noqa: ASYNC110
                            await asyncio.sleep(0.1)
                    killed_at = datetime.now(UTC)
                    await processes[holder].kill()
                    async with asyncio.timeout(WAIT_S):
                        while True:
                            after = [i for i in await job_items(db, job.id) if i.created_at > killed_at]
                            if after:
                                break
                            await asyncio.sleep(0.02)
                    times.append((min(i.created_at for i in after) - killed_at).total_seconds())
                    new = await leader(db)
                    print(f"killed {holder}; {new} fired {times[-1]:.2f} s later", flush=True)
                    await processes[holder].start()
                await asyncio.sleep(3)
            finally:
                await asyncio.gather(*(p.stop() for p in processes.values()))
            items = await job_items(db, job.id)
            ticks = len([c for c in await sim.out("c2c", "fo-user") if c == "tick"])
            delivered = len([i for i in items if i.state == "delivered"])
            skipped = 0
            slots = [
                datetime.strptime(str(i.idempotency_key).rsplit(":", 1)[1], "%Y%m%dT%H%M%S").replace(
                    tzinfo=UTC
                )
                for i in items
            ]
            for slot, following in pairwise(slots):
                skipped += following != next_after(job.schedule, slot)
        await db.dispose()
    print(
        {
            "kills": len(times),
            "failover_max_s": round(max(times), 2),
            "failover_median_s": round(statistics.median(times), 2),
            "slots_fired": len(items),
            "delivered_twice": max(0, ticks - delivered),
            "skipped": skipped,
            "load": load(),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", default="/tmp/herald-bench-multi", help="configs and logs")
    sub = parser.add_subparsers(dest="command", required=True)
    tp = sub.add_parser("throughput")
    tp.add_argument("--users", type=int, default=40)
    tp.add_argument("--messages", type=int, default=10, help="per user, sent at once")
    fo = sub.add_parser("failover")
    fo.add_argument("--kills", type=int, default=20)
    fo.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(throughput(args) if args.command == "throughput" else failover(args))


if __name__ == "__main__":
    main()
