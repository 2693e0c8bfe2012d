"""What a user pays per message with a real model server: `herald run` (its own process, a config
file) against the emulator (`herald sim`, its own process) and an instant OpenAI-compatible model
served over HTTP (bench/scripted_llm.py, its own process), N users in a closed loop: each user
sends its next message as soon as the reply to the previous one reached the platform.

    .venv/bin/python bench/http_turns.py                          # 50 users, SQLite, 20 s
    .venv/bin/python bench/http_turns.py --db postgresql --users 100 --seconds 30
    .venv/bin/python bench/http_turns.py --py-spy /tmp/herald.txt # where Herald's CPU goes

With no `--think-ms` (the default) every user writes again at once, so Herald is saturated: the
messages per second are its capacity and the latency is mostly the queue (N users / capacity, by
Little's law). `--think-ms` paces the users, to see the latency of a load below capacity: each
pause is drawn from an exponential distribution with that mean, and each user starts after one,
so messages arrive as from people, not in bursts of N at once.

Printed (over the measured phase, after `--warmup` seconds):
  messages_per_s              replies that reached the platform per second
  p50_ms / p99_ms / mean_ms   inbound → reply request, on the emulator's own clock (the message's
                              dispatch to the gateway, the reply's arrival at the OpenAPI)
  herald_cpu_ms_per_message   user + system CPU of the `herald run` process (/proc) / replies
  herald_cpu_percent          of one core, over the phase
  sim_/model_/driver_cpu_ms_per_message  the other processes (the users are the driver), for context
  load_1m_before / _after     the machine's load average (other work on the cores skews everything)

Herald runs with the configuration a deployment would have, except what the bench must open:
the emulator's and Herald's message rate limits are lifted (`[qq.delivery] message_qps`, `[limits]
user_messages_per_minute`: each user writes far more than 20 a minute), and
replies are not streamed (`[policy] stream = false`; a streamed C2C reply is at least two
`/stream_messages` requests and the platform allows 50 of those per second). Installed plugins are not
loaded (`[plugins] enabled = []`): a development checkout has the example plugin installed, whose
hooks and tools are its own cost, not Herald's; `--installed-plugins` loads them. The model answers
`echo: <text>`; Herald offers it its tools as usual. `--llm-client` picks Herald's client for the
OpenAI-compatible server (`[llm] client`).

`--py-spy FILE` samples the Herald process over the measured phase (py-spy, GIL holder only) and
prints the functions with the most samples (self and inclusive) and the share per package;
the raw collapsed stacks go to FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from common import database, free_port, qq_toml, run_sim, wait_up
from scripted_llm import run_llm

READY = re.compile(r"qq gateway: (READY|RESUMED)")
REPLY = re.compile(r"^/v2/users/([^/]+)/messages$")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def config_text(args: argparse.Namespace, base: str, llm_base: str, db_url: str) -> str:
    client = f'client = "{args.llm_client}"\n' if args.llm_client else ""
    plugins = "" if args.installed_plugins else "\n[plugins]\nenabled = []\n"
    return f"""
{qq_toml(base)}
[qq.delivery]
message_qps = 1000000

[llm]
provider = "openai"
base_url = "{llm_base}"
api_key = "bench"
model = "scripted"
timeout_s = 30
{client}
[storage]
url = "{db_url}"

[delivery]
instance = "bench"

[limits]
user_messages_per_minute = 0

[policy]
stream = false
{plugins}"""


class Users:
    """N users in a closed loop; one poller reads the emulator's request log and wakes the user
    whose reply just arrived."""

    def __init__(self, http: aiohttp.ClientSession, base: str, count: int, think_s: float) -> None:
        self.http = http
        self.think_s = think_s
        self.base = base
        self.names = [f"user-{i:04d}" for i in range(count)]
        self.replied = {name: asyncio.Event() for name in self.names}
        self.replies = 0
        self.sent = 0
        self.timeouts = 0
        self.stopping = False
        self.seen = 0
        self.random = random.Random(14)  # the same think times on every run

    def think(self) -> float:
        """A pause drawn around `think_s` (exponential): people do not write in step, and users
        paced by one fixed pause would stay in step from the first message on, so the load would
        come in bursts of N messages at once."""
        return self.random.expovariate(1 / self.think_s) if self.think_s else 0.0

    async def poll(self) -> None:
        while True:
            async with self.http.get(f"{self.base}/_sim/requests?since={self.seen}") as resp:
                data = await resp.json()
            for entry in data["requests"]:
                self.seen = max(self.seen, entry["n"])
                match = REPLY.match(entry["path"])
                if match and entry["code"] is None and match.group(1) in self.replied:
                    self.replies += 1
                    self.replied[match.group(1)].set()
            await asyncio.sleep(0.005)

    async def user(self, name: str) -> None:
        n = 0
        await asyncio.sleep(self.think())
        while not self.stopping:
            self.replied[name].clear()
            n += 1
            async with self.http.post(
                f"{self.base}/_sim/c2c/{name}/messages", json={"content": f"hi {n}"}
            ) as resp:
                await resp.read()
            self.sent += 1
            try:
                async with asyncio.timeout(30):
                    await self.replied[name].wait()
            except TimeoutError:
                self.timeouts += 1
            if self.think_s:
                await asyncio.sleep(self.think())

    async def latencies(self, start: float, end: float) -> list[float]:
        """Inbound → first reply request, emulator clock, for messages dispatched in [start, end)."""
        values: list[float] = []
        for name in self.names:
            async with self.http.get(f"{self.base}/_sim/transcript?scene=c2c&target={name}") as resp:
                entries = (await resp.json())["entries"]
            pending: list[float] = []
            for entry in entries:
                if entry["direction"] == "in":
                    pending.append(entry["at"])
                elif pending and entry.get("status") == 200:
                    at = pending.pop(0)
                    if start <= at < end:
                        values.append(entry["at"] - at)
        return values


async def sim_time(http: aiohttp.ClientSession, base: str) -> float:
    async with http.get(f"{base}/_sim/clock") as resp:
        return float((await resp.json())["time"])


def py_spy_command() -> str | None:
    """py-spy beside this Python (herald[dev] installs it), else on PATH; None if neither.
    `.venv/bin/python bench/...` runs without the venv on PATH, so the venv's is looked for first."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


def py_spy_summary(path: Path, top: int) -> dict[str, Any]:
    """Self and inclusive sample counts per function, and the share per package, from py-spy's
    raw (collapsed) output."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
        packages[package_of(frames[-1])] += count

    def share(counter: collections.Counter[str]) -> list[str]:
        return [f"{n / total * 100:5.1f}%  {name}" for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "by_package_self": share(packages),
        "top_self": share(own),
        "top_inclusive": share(inclusive),
    }


def package_of(frame: str) -> str:
    """`func (pkg/mod.py:12)` (py-spy's short path) → its top-level package, "stdlib:<module>"
    for the standard library."""
    path = frame.rpartition(" (")[2].rpartition(":")[0]
    top = path.split("/", 1)[0].removesuffix(".py")
    if top in sys.stdlib_module_names or path.startswith("<frozen"):
        return f"stdlib:{top}"
    return top or "?"


async def measure(args: argparse.Namespace, base: str, llm_base: str, pids: dict[str, int]) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="herald-http-turns-"))
    herald: asyncio.subprocess.Process | None = None
    spy: asyncio.subprocess.Process | None = None
    connector = aiohttp.TCPConnector(limit=0)
    try:
        async with aiohttp.ClientSession(connector=connector) as http, database(args.db) as db_url:
            await wait_up(http, f"{base}/_sim/clock")
            await wait_up(http, f"{llm_base}/models")
            config = workdir / "herald.toml"
            config.write_text(config_text(args, base, llm_base, db_url), encoding="utf-8")
            log = workdir / "herald.log"
            with log.open("wb") as out:
                herald = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", "from herald.cli import main; main()",
                    "run", "--config", str(config), "--log-level", args.log_level,
                    stdout=out, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
            deadline = time.monotonic() + 60
            while not READY.search(log.read_text(errors="replace")):
                if herald.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"herald run did not become ready:\n{log.read_text(errors='replace')}")
                await asyncio.sleep(0.05)
            pids["herald"] = herald.pid

            users = Users(http, base, args.users, args.think_ms / 1000)
            poller = asyncio.create_task(users.poll())
            loops = [asyncio.create_task(users.user(name)) for name in users.names]
            await asyncio.sleep(args.warmup)

            load_before = os.getloadavg()[0]
            spy_command = py_spy_command()
            if args.py_spy and spy_command is not None:
                spy = await asyncio.create_subprocess_exec(
                    spy_command, "record", "--pid", str(herald.pid), "--format", "raw", "--rate", "200",
                    "--gil", "--duration", str(int(args.seconds)), "--output", str(args.py_spy),
                    "--nonblocking",
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
            cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            driver0 = time.process_time()
            replies0, start = users.replies, await sim_time(http, base)
            await asyncio.sleep(args.seconds)
            replies1, end = users.replies, await sim_time(http, base)
            cpu1 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            driver = time.process_time() - driver0
            load_after = os.getloadavg()[0]

            users.stopping = True
            await asyncio.wait(loops, timeout=35)
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            values = await users.latencies(start, end)
            if spy is not None:
                async with asyncio.timeout(60):
                    await spy.wait()
            replies = replies1 - replies0
            errors = [line for line in log.read_text(errors="replace").splitlines() if " ERROR " in line]
            result: dict[str, Any] = {
                "db": args.db,
                "users": args.users,
                "think_ms": args.think_ms,
                "llm_client": args.llm_client or "default",
                "seconds": round(end - start, 2),
                "messages": replies,
                "messages_per_s": round(replies / (end - start), 1),
                "p50_ms": round(percentile(values, 0.50) * 1000, 2) if values else None,
                "p99_ms": round(percentile(values, 0.99) * 1000, 2) if values else None,
                "mean_ms": round(statistics.fmean(values) * 1000, 2) if values else None,
                "herald_cpu_ms_per_message": round(
                    (cpu1["herald"] - cpu0["herald"]) / max(replies, 1) * 1000, 3
                ),
                "herald_cpu_percent": round((cpu1["herald"] - cpu0["herald"]) / (end - start) * 100, 1),
                "sim_cpu_ms_per_message": round((cpu1["sim"] - cpu0["sim"]) / max(replies, 1) * 1000, 3),
                "model_cpu_ms_per_message": round(
                    (cpu1["model"] - cpu0["model"]) / max(replies, 1) * 1000, 3
                ),
                "driver_cpu_ms_per_message": round(driver / max(replies, 1) * 1000, 3),
                "timeouts": users.timeouts,
                "herald_errors_logged": len(errors),
                "load_1m_before": round(load_before, 2),
                "load_1m_after": round(load_after, 2),
            }
            if errors:
                result["first_error"] = errors[0][:300]
            if args.py_spy and args.py_spy.exists():
                result["py_spy"] = py_spy_summary(args.py_spy, args.top)
            return result
    finally:
        if spy is not None and spy.returncode is None:
            spy.kill()
            await spy.wait()
        if herald is not None and herald.returncode is None:
            herald.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(20):
                    await herald.wait()
            except TimeoutError:
                herald.kill()
                await herald.wait()
        if args.keep:
            print(f"Herald's config and log: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=50, help="users in the closed loop")
    parser.add_argument(
        "--think-ms",
        type=float,
        default=0,
        help="a user's mean pause between a reply and its next message (exponential)",
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the measured phase")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    parser.add_argument("--llm-client", choices=["direct", "sdk"], help="[llm] client (default: Herald's)")
    parser.add_argument("--log-level", default="info", help="herald run --log-level")
    parser.add_argument(
        "--installed-plugins",
        action="store_true",
        help="load the plugins installed beside Herald (default: none; their hooks and tools are theirs)",
    )
    parser.add_argument("--py-spy", type=Path, help="sample Herald with py-spy; raw stacks to this file")
    parser.add_argument("--top", type=int, default=25, help="entries per py-spy list")
    parser.add_argument("--keep", action="store_true", help="keep Herald's config and log")
    args = parser.parse_args()
    if args.users < 1 or args.seconds <= 0:
        parser.error("need --users >= 1 and --seconds > 0")
    if args.py_spy and py_spy_command() is None:
        parser.error("--py-spy needs py-spy, beside this Python or on PATH: pip install py-spy")

    sim_port, llm_port = free_port(), free_port()
    sim = multiprocessing.Process(
        target=run_sim,
        args=(sim_port,),
        kwargs={"rate_limits": False, "request_log_limit": 20_000, "endpoint_qps": {}},
        daemon=True,
    )
    llm = multiprocessing.Process(target=run_llm, args=(llm_port, "/dev/null"), daemon=True)
    sim.start()
    llm.start()
    try:
        assert sim.pid is not None and llm.pid is not None
        pids = {"sim": sim.pid, "model": llm.pid}
        result = asyncio.run(
            measure(args, f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{llm_port}/v1", pids)
        )
    finally:
        for process in (sim, llm):
            process.terminate()
            process.join(10)
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
