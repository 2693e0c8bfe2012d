"""Herald's turn overhead end to end: a user message injected at `herald sim` → gateway →
Herald (ledger, durable turn, zero-latency scripted model, outbox, ledger plan) → the reply's
API request at the sim. Timestamps are the sim's own (one clock): `in.at` when the message was
dispatched, the first `out.at` when the reply request arrived.

    .venv/bin/python bench/turns.py                       # SQLite
    .venv/bin/python bench/turns.py --db postgresql
    .venv/bin/python bench/turns.py --latency 300 --messages 3000 --conversations 300

Phases:
  latency     one message at a time (paced, nothing queued): p50/p99 of inbound → first request.
  throughput  `--messages` over `--conversations`, injected as fast as an injector process can:
              messages/s from the first injection to the last reply, and Herald's CPU time per
              message (this process's CPU time during the phase / messages).

The sim and the injector run in their own processes; the sim's and Herald's rate limits are off.
`--agent-only` measures the agent layer alone (turn record, history, model, step save, finish on
the store, an outbox stand-in that sends nothing), to separate it from delivery and the wire.
`--profile` prints where Herald's time goes in the throughput phase.

`--console` measures what the operator's console costs on the message path:
  off      no console (the default): no metrics counted, nobody listening to changes;
  metrics  the console on, `/metrics` scraped every second (a busy Prometheus);
  live     and, in another process, an operator's open page: the `/live` event stream, and the
           conversations page fetched again after each event (as the page does).
Compare `herald_cpu_ms_per_message` across runs of each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import multiprocessing
import os
import pstats
import secrets
import statistics
import sys
import time
from typing import Any

import aiohttp
from common import APP_ID, SECRET, database, free_port, run_sim
from pydantic import SecretStr
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from herald.app import Herald, ModelChoice
from herald.config import (
    ConsoleConfig,
    DeliveryConfig,
    HeraldConfig,
    QQConfig,
    QQDeliveryConfig,
    SchedulerConfig,
    StorageConfig,
)

CONSOLE_TOKEN = "bench-console-token"


def run_injector(base: str, jobs: list[tuple[str, str]], concurrency: int, ready: Any, go: Any) -> None:
    async def inject() -> None:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as http:
            queue = list(reversed(jobs))

            async def worker() -> None:
                while queue:
                    user, content = queue.pop()
                    async with http.post(f"{base}/_sim/c2c/{user}/messages", json={"content": content}) as r:
                        await r.read()

            ready.set()
            go.wait()
            await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(inject())


def run_operator(base: str, live: bool, stop: Any) -> None:
    """A Prometheus scraping every second and, with `live`, an open console page."""

    async def operate() -> None:
        headers = {"Authorization": f"Bearer {CONSOLE_TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as http:

            async def scrape() -> None:
                while not stop.is_set():
                    async with http.get(f"{base}/metrics") as r:
                        await r.read()
                    await asyncio.sleep(1)

            async def watch() -> None:
                refresh: asyncio.Task[None] | None = None

                async def fetch_page() -> None:
                    async with http.get(f"{base}/conversations") as r:
                        await r.read()

                async with http.get(f"{base}/live", timeout=aiohttp.ClientTimeout(total=None)) as r:
                    async for line in r.content:
                        if stop.is_set():
                            return
                        if line.startswith(b"event: change") and (refresh is None or refresh.done()):
                            refresh = asyncio.create_task(fetch_page())

            tasks = [asyncio.create_task(scrape())]
            if live:
                tasks.append(asyncio.create_task(watch()))
            await asyncio.to_thread(stop.wait)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(operate())


async def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart("ok")])


async def get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        return await response.json()


async def replies_seen(http: aiohttp.ClientSession, base: str) -> int:
    data = await get(http, f"{base}/_sim/requests?since=999999999")
    return int(data["total"])


async def wait_requests(http: aiohttp.ClientSession, base: str, total: int, limit_s: float) -> None:
    async with asyncio.timeout(limit_s):
        while await replies_seen(http, base) < total:  # noqa: ASYNC110 (polling the sim's process)
            await asyncio.sleep(0.02)


async def overheads(
    http: aiohttp.ClientSession, base: str, users: list[str]
) -> tuple[list[float], float, float]:
    """Per message: first reply request time minus dispatch time (sim clock); first in, last out."""
    values: list[float] = []
    first_in, last_out = float("inf"), 0.0
    for user in users:
        entries = (await get(http, f"{base}/_sim/transcript?scene=c2c&target={user}"))["entries"]
        pending: list[float] = []
        for entry in entries:
            if entry["direction"] == "in":
                pending.append(entry["at"])
                first_in = min(first_in, entry["at"])
            elif pending:
                values.append(entry["at"] - pending.pop(0))
                last_out = max(last_out, entry["at"])
    return values, first_in, last_out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(
    args: argparse.Namespace, base: str, http: aiohttp.ClientSession, url: str
) -> dict[str, Any]:
    config = HeraldConfig(
        qq=QQConfig(
            app_id=APP_ID,
            secret=SecretStr(SECRET),
            api_base=base,
            token_url=f"{base}/app/getAppAccessToken",
            delivery=QQDeliveryConfig(message_qps=1e9),
        ),
        storage=StorageConfig(url=url),
        delivery=DeliveryConfig(max_concurrent_conversations=args.concurrency, instance="bench"),
        scheduler=SchedulerConfig(enabled=False),
    )
    if args.console != "off":
        config.console = ConsoleConfig(enabled=True, port=0, api_token=SecretStr(CONSOLE_TOKEN))
    herald = Herald(config, model=ModelChoice(FunctionModel(answer)), rate_limits=False)
    await herald.start()
    await herald.wait_ready()
    result: dict[str, Any] = {"db": args.db, "console": args.console}
    operator: multiprocessing.Process | None = None
    stop_operator = multiprocessing.Event()
    if herald.console is not None:
        operator = multiprocessing.Process(
            target=run_operator, args=(herald.console.base_url, args.console == "live", stop_operator)
        )
        operator.start()
    try:
        # Warm up (token, connections, caches).
        for i in range(20):
            async with http.post(f"{base}/_sim/c2c/warm-{i}/messages", json={"content": "hi"}) as r:
                await r.read()
        await wait_requests(http, base, await replies_seen(http, base) + 0, 5)
        await asyncio.sleep(0.5)

        # Latency: one at a time, paced so nothing queues.
        users = [f"lat-{i:05d}" for i in range(args.latency)]
        for user in users:
            async with http.post(f"{base}/_sim/c2c/{user}/messages", json={"content": "hi"}) as r:
                await r.read()
            await asyncio.sleep(args.pace)
        await asyncio.sleep(0.5)
        values, _, _ = await overheads(http, base, users)
        result["latency_n"] = len(values)
        result["p50_ms"] = round(percentile(values, 0.50) * 1000, 3)
        result["p99_ms"] = round(percentile(values, 0.99) * 1000, 3)
        result["mean_ms"] = round(statistics.fmean(values) * 1000, 3)

        # Throughput: many conversations at once, injected from another process.
        convs = [f"tp-{i:05d}" for i in range(args.conversations)]
        jobs = [(convs[i % len(convs)], f"m{i}") for i in range(args.messages)]
        ready, go = multiprocessing.Event(), multiprocessing.Event()
        injector = multiprocessing.Process(
            target=run_injector, args=(base, jobs, args.inject_concurrency, ready, go)
        )
        injector.start()
        await asyncio.to_thread(ready.wait)
        baseline = await replies_seen(http, base)
        profiler = cProfile.Profile() if args.profile else None
        cpu0 = time.process_time()
        if profiler:
            profiler.enable()
        go.set()
        await wait_requests(http, base, baseline + args.messages, 600)
        if profiler:
            profiler.disable()
        cpu = time.process_time() - cpu0
        await asyncio.to_thread(injector.join)
        values, first_in, last_out = await overheads(http, base, convs)
        result["messages"] = len(values)
        result["messages_per_s"] = round(len(values) / (last_out - first_in), 1)
        result["throughput_p50_ms"] = round(percentile(values, 0.50) * 1000, 3)
        result["throughput_p99_ms"] = round(percentile(values, 0.99) * 1000, 3)
        result["herald_cpu_ms_per_message"] = round(cpu / args.messages * 1000, 3)
        if profiler:
            stats = pstats.Stats(profiler, stream=sys.stderr).sort_stats(args.sort)
            stats.print_stats(args.top)
            if os.environ.get("HERALD_BENCH_CALLERS"):
                stats.print_callers(os.environ["HERALD_BENCH_CALLERS"])
        if herald.console is not None:
            result["live_listeners"] = herald.changes.listeners
    finally:
        stop_operator.set()
        if operator is not None:
            await asyncio.to_thread(operator.join, 10)
        await herald.stop()
    return result


class _Delivered:
    """A receipt that is already final (for `--agent-only`)."""

    def __await__(self) -> Any:
        if False:
            yield
        return None


class _NullSender:
    """Stands in for the outbox in `--agent-only`: counts items, sends nothing (but commits what
    the sender asks to be committed with the item, as the outbox does)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.items = 0

    async def enqueue(self, target: Any, segments: Any, *, also: Any = None, **kwargs: Any) -> Any:
        self.items += 1
        if also is not None:
            await self.db.writes.run(also)
        return _Delivered()


async def agent_only(args: argparse.Namespace) -> dict[str, Any]:
    """The agent layer alone (durable turn record, history, model, step save, finish) on the store."""
    from herald.agent import AgentRunner, Toolbox, TurnStore
    from herald.config import AgentConfig
    from herald.core.clock import SystemClock
    from herald.scheduler import JobStore
    from herald.store import Database

    async with database(args.db) as url:
        db = Database(url)
        await db.migrate()
        clock = SystemClock()
        turns = TurnStore(db, clock)
        sender = _NullSender(db)
        runner = AgentRunner(
            model=FunctionModel(answer),
            turns=turns,
            toolbox=Toolbox(sender, JobStore(db, clock), clock),
            sender=sender,
            clock=clock,
            config=AgentConfig(),
        )
        tag = secrets.token_hex(4)

        async def one(i: int, conversation: str) -> float:
            start = time.perf_counter()
            turn = await turns.record(
                conversation=conversation,
                source_id=f"{tag}-{i}",
                kind="message",
                content="hi",
                trigger_id=str(i),
            )
            assert turn is not None
            await runner.run(turn)
            return time.perf_counter() - start

        try:
            cpu0 = time.process_time()
            values = [await one(i, f"c2c:seq-{i % 50}") for i in range(args.latency)]
            cpu = time.process_time() - cpu0
            start = time.perf_counter()
            convs = args.conversations
            for base in range(0, args.messages, convs):
                count = min(convs, args.messages - base)
                await asyncio.gather(*(one(args.latency + base + k, f"c2c:par-{k}") for k in range(count)))
            elapsed = time.perf_counter() - start
        finally:
            await turns.close()
            await db.dispose()
    return {
        "db": args.db,
        "layer": "agent only (store + scripted model, no platform)",
        "turn_p50_ms": round(percentile(values, 0.5) * 1000, 3),
        "turn_p99_ms": round(percentile(values, 0.99) * 1000, 3),
        "cpu_ms_per_turn": round(cpu / len(values) * 1000, 3),
        "turns_per_s_concurrent": round(args.messages / elapsed, 1),
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    if args.agent_only:
        return await agent_only(args)
    port = free_port()
    sim = multiprocessing.Process(
        target=run_sim,
        args=(port,),
        kwargs={"rate_limits": False, "request_log_limit": 500_000, "endpoint_qps": {}},
        daemon=True,
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
            return await measure(args, base, http, url)
    finally:
        sim.terminate()
        sim.join()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--latency", type=int, default=200, help="messages in the latency phase")
    parser.add_argument("--pace", type=float, default=0.02, help="seconds between latency-phase messages")
    parser.add_argument("--messages", type=int, default=2000, help="messages in the throughput phase")
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=64, help="outbox conversations in flight")
    parser.add_argument("--inject-concurrency", type=int, default=32)
    parser.add_argument("--agent-only", action="store_true", help="measure the agent layer alone")
    parser.add_argument("--console", choices=["off", "metrics", "live"], default="off")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime", help="profile sort key (tottime, cumulative)")
    parser.add_argument("--top", type=int, default=30, help="profile entries to print")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(bench(args)), indent=2))


if __name__ == "__main__":
    main()
