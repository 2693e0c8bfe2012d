"""What one `herald run` costs at rest and at size: cold start to READY, and memory with many
conversations.

    .venv/bin/python bench/footprint.py            # SQLite: cold starts, then 10,000 conversations
    .venv/bin/python bench/footprint.py --db postgresql
    .venv/bin/python bench/footprint.py --conversations 2000 --starts 3

Processes: the emulator (`herald sim`), a scripted OpenAI-compatible model (bench/scripted_llm.py,
instant answers over HTTP) and `herald run --config FILE`, each its own process.

Phases:
  cold           `--starts` launches of `herald run`: seconds from the process's start to its
                 gateway's READY line (the first launch also creates the database's tables), and
                 the interpreter's import of the CLI alone, for comparison.
  conversations  a launch that creates the tables (its memory at READY is printed too: it keeps
                 the migration tool loaded), then a second one, measured: `--conversations`
                 users each send one message (at most `--in-flight` waiting for their reply at a
                 time) and are answered; the Herald process's resident memory (VmRSS) after
                 READY, after every user was answered, and its peak (VmHWM). Goals: cold start
                 ≤ 1.5 s, 10,000 conversations ≤ 150 MB.

Installed plugins are not loaded (`[plugins] enabled = []`), as in bench/http_turns.py: a
development checkout has the example plugin installed, whose modules, hooks and tasks are its own
cost; `--installed-plugins` loads them.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from common import database, free_port, run_sim, wait_up
from scripted_llm import run_llm
from soak import HeraldProcess, write_config


def memory_mb(pid: int) -> dict[str, float]:
    """The process's resident set now and at its peak, in MB."""
    figures: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            figures[key] = int(value.split()[0]) / 1024
    return figures


def import_seconds() -> float:
    """One fresh interpreter importing the CLI, and nothing else."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import herald.cli"], check=True)
    return time.monotonic() - started


def without_plugins(config: Path, args: argparse.Namespace) -> None:
    if not args.installed_plugins:
        with config.open("a", encoding="utf-8") as out:
            out.write("\n[plugins]\nenabled = []\n")


async def launch_to_ready(herald: HeraldProcess) -> float:
    started = time.monotonic()
    await herald.start()
    if not await herald.ready(60, poll_s=0.005):
        raise RuntimeError(f"herald run did not get READY within 60 s; see {herald.log}")
    return time.monotonic() - started


async def cold(args: argparse.Namespace, base: str, llm_base: str, logs: Path) -> dict[str, Any]:
    seconds: list[float] = []
    async with database(args.db) as db_url:
        config = logs / "cold.toml"
        write_config(config, base, llm_base, db_url)
        without_plugins(config, args)
        herald = HeraldProcess(config, logs)
        for _ in range(args.starts):
            seconds.append(await launch_to_ready(herald))
            await herald.stop()
    return {
        "cold_start_first_s": round(seconds[0], 3),  # creates the tables too
        "cold_start_s": [round(s, 3) for s in seconds[1:]],
        "import_cli_s": round(import_seconds(), 3),
    }


async def answered(http: aiohttp.ClientSession, base: str) -> int:
    async with http.get(f"{base}/_sim/requests") as resp:
        requests = (await resp.json())["requests"]
    return sum(
        1 for r in requests if r.get("method") == "POST" and "/v2/users/" in r["path"] and r["status"] == 200
    )


async def conversations(args: argparse.Namespace, base: str, llm_base: str, logs: Path) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, database(args.db) as db_url:
        config = logs / "conversations.toml"
        write_config(config, base, llm_base, db_url)
        without_plugins(config, args)
        herald = HeraldProcess(config, logs)
        # The first launch creates the tables, and keeps the migration tool's modules loaded;
        # the measured one is a restart, as every launch after the first is.
        await launch_to_ready(herald)
        assert herald.process is not None
        first_at_ready = memory_mb(herald.process.pid)
        await herald.stop()
        await launch_to_ready(herald)
        assert herald.process is not None
        pid = herald.process.pid
        try:
            at_ready = memory_mb(pid)
            async with http.delete(f"{base}/_sim/requests"):
                pass
            started = time.monotonic()
            slots = asyncio.Semaphore(args.in_flight)
            done = 0

            async def user(i: int) -> None:
                nonlocal done
                async with slots:
                    openid = f"fp-{i:05d}"
                    body = {"content": f"hello from {i}"}
                    async with http.post(f"{base}/_sim/c2c/{openid}/messages", json=body) as resp:
                        resp.raise_for_status()
                    while True:
                        async with http.get(
                            f"{base}/_sim/transcript", params={"scene": "c2c", "target": openid}
                        ) as resp:
                            entries = (await resp.json())["entries"]
                        if any(e.get("direction") == "out" and e.get("status") == 200 for e in entries):
                            break
                        await asyncio.sleep(0.2)
                    done += 1
                    if done % 1000 == 0:
                        rss = memory_mb(pid)["VmRSS"]
                        print(f"  {done} conversations answered, RSS {rss:.0f} MB", flush=True)

            await asyncio.gather(*(user(i) for i in range(args.conversations)))
            elapsed = time.monotonic() - started
            after = memory_mb(pid)
            return {
                "conversations": args.conversations,
                "answered": done,
                "seconds": round(elapsed, 1),
                "rss_at_ready_first_launch_mb": round(first_at_ready["VmRSS"], 1),
                "rss_at_ready_mb": round(at_ready["VmRSS"], 1),
                "rss_after_mb": round(after["VmRSS"], 1),
                "rss_peak_mb": round(after["VmHWM"], 1),
            }
        finally:
            await herald.stop()


async def main_async(args: argparse.Namespace, base: str, llm_base: str, logs: Path) -> None:
    async with aiohttp.ClientSession() as http:
        for url in (f"{base}/_sim/clock", f"{llm_base}/models"):
            await wait_up(http, url)
    print(f"load before: {os.getloadavg()[0]:.2f}", flush=True)
    if "cold" in args.phases:
        for key, value in (await cold(args, base, llm_base, logs)).items():
            print(f"{key}: {value}", flush=True)
    if "conversations" in args.phases:
        for key, value in (await conversations(args, base, llm_base, logs)).items():
            print(f"{key}: {value}", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--phases", nargs="+", default=["cold", "conversations"], choices=["cold", "conversations"]
    )
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument(
        "--installed-plugins",
        action="store_true",
        help="load the plugins installed beside Herald (default: none; their cost is theirs)",
    )
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="herald-footprint-"))
    sim_port, llm_port = free_port(), free_port()
    sim = multiprocessing.Process(
        target=run_sim,
        args=(sim_port,),
        kwargs={"request_log_limit": 1_000_000, "rate_limits": False},
        daemon=True,
    )
    llm = multiprocessing.Process(target=run_llm, args=(llm_port, str(logs / "llm.log")), daemon=True)
    sim.start()
    llm.start()
    try:
        asyncio.run(main_async(args, f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{llm_port}/v1", logs))
    finally:
        for process in (sim, llm):
            process.terminate()
            process.join(5)
        shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    main()
