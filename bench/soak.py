"""A bounded soak of `herald run` against `herald sim`: users ask for bursts of sends while Herald
is SIGKILLed and restarted again and again; at the end, what was lost, duplicated or reordered.

    .venv/bin/python bench/soak.py                 # SQLite, 10 users × 6 requests × 10 sends, 20 kills
    .venv/bin/python bench/soak.py --db postgresql
    .venv/bin/python bench/soak.py --burst-5xx 25 --burst-429 10 --outage 30
    .venv/bin/python bench/soak.py --users 3 --requests 2 --sends 5 --kills 3   # the CI size

Processes: the emulator (`herald sim`), a scripted OpenAI-compatible model (bench/scripted_llm.py)
and `herald run --config FILE`, each its own process, over loopback sockets; a fresh database per
run. Every request is the user message `send N [TAG]`; the model answers it with N
`send_message_to_user` calls (`TAG #1` … `TAG #N`), then the final answer `TAG done`.

Workload: the requests of all conversations in a seeded random order (each conversation's in its
own order), spread over the kill phase. Herald is SIGKILLed 1–9 s (seeded) after each launch and
restarted `--down-s` later; `--while-down` requests are injected in each gap, while no Herald
runs. Optional faults: `--burst-5xx N` / `--burst-429 N` (the emulator's `fail_next`: the next N
OpenAPI calls answer HTTP 500 / 429 `50002`) at a third / half of the kills; `--outage S`: the
platform unreachable for S seconds (the emulator's process stopped with SIGSTOP, then SIGCONT) at
two thirds. Then a drain: until every expected send is accepted, or Herald is connected, nothing
is pending in its database and the platform saw no request for `--quiet-s`, or `--drain-s` passed.

Exit status 0 when every figure marked * below is zero, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from common import database, free_port, qq_toml, run_sim, wait_up
from scripted_llm import run_llm
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

COUNTING = """\
What is counted (a send is one accepted message: an outbound transcript entry with HTTP 200):
  expected sends      per request `send N [TAG]`: N + 1 (`TAG #1`..`TAG #N` and the final answer `TAG done`)
* inbound lost        requests with not one expected send accepted (never answered); by the phase
                      they were injected in: down (no Herald), starting (launched, gateway not
                      READY yet), up
* outbound lost       expected sends missing, of requests answered at least once
                      (a send whose outbox item is in "outcome unknown" is listed, not counted)
* duplicated          accepted copies of an expected send beyond the first
* out of order        per conversation, first copies accepted after one that should follow them
                      (requests in injection order, each one's sends in call order, then its answer)
* unexpected          accepted sends that are not expected ones (e.g. an error message)
* platform refusals   OpenAPI requests answered with an error code, except the faults the soak
                      injected and 40054005 (the platform deduplicating a resent passive reply,
                      which is how a crash between send and record is meant to be absorbed)
  outcome unknown     outbox items in state `unknown` or failed as "outcome unknown" (listed)"""

READY = re.compile(r"qq gateway: (READY|RESUMED)")
DUPLICATE_CODE = 40054005
FAULT_5XX = (500, 50055001)
FAULT_429 = (429, 50002)
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=30)


@dataclass(frozen=True, slots=True)
class Conversation:
    scene: str  # c2c | group
    target: str
    name: str  # short, used in tags
    member: str | None = None


@dataclass(slots=True)
class Request:
    conversation: Conversation
    index: int
    tag: str
    phase: str = "up"  # when injected: "down" (no Herald), "starting" (gateway not READY yet), "up"
    msg_id: str | None = None

    def expected(self, sends: int) -> list[str]:
        return [f"{self.tag} #{i}" for i in range(1, sends + 1)] + [f"{self.tag} done"]


@dataclass(slots=True)
class Clock:
    start: float = field(default_factory=time.monotonic)

    def __call__(self) -> float:
        return time.monotonic() - self.start


class HeraldProcess:
    """`herald run --config FILE` as a child process, its output in one log file per launch."""

    def __init__(self, config: Path, logs: Path) -> None:
        self.config = config
        self.logs = logs
        self.process: asyncio.subprocess.Process | None = None
        self.launches = 0
        self.log: Path | None = None

    async def start(self) -> None:
        self.launches += 1
        self.log = self.logs / f"herald-{self.launches:02d}.log"
        with self.log.open("wb") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", "from herald.cli import main; main()",
                "run", "--config", str(self.config), "--log-level", "info",
                stdout=out, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
            )  # fmt: skip

    def is_ready(self) -> bool:
        """Whether this launch's gateway has said READY/RESUMED yet."""
        if self.process is None or self.log is None:
            return False
        return bool(READY.search(self.log.read_text(encoding="utf-8", errors="replace")))

    async def ready(self, limit_s: float, poll_s: float = 0.05) -> bool:
        """Whether the gateway said READY/RESUMED within `limit_s` (False if it exited); the log
        is read every `poll_s`, which is the resolution of a time measured with this."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.is_ready():
                return True
            if self.process is None or self.process.returncode is not None:
                return False
            await asyncio.sleep(poll_s)
        return False

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()
        self.process = None

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not stopped within 20 s."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(20):
                    await self.process.wait()
        await self.kill()


class Soak:
    def __init__(
        self, args: argparse.Namespace, base: str, http: aiohttp.ClientSession, sim_pid: int
    ) -> None:
        self.args = args
        self.base = base
        self.http = http
        self.sim_pid = sim_pid
        self.rng = random.Random(args.seed)
        self.clock = Clock()
        self.conversations = [
            Conversation("c2c", f"soak-user-{u:02d}", f"u{u:02d}") for u in range(args.users)
        ]
        self.conversations += [
            Conversation("group", f"soak-group-{g:02d}", f"g{g:02d}", member=f"soak-member-{g:02d}")
            for g in range(args.groups)
        ]
        order = [c for c in self.conversations for _ in range(args.requests)]
        self.rng.shuffle(order)
        counts: Counter[Conversation] = Counter()
        self.requests: list[Request] = []
        for conversation in order:
            index = counts[conversation]
            counts[conversation] += 1
            self.requests.append(Request(conversation, index, f"{conversation.name}r{index}"))
        self.queue = list(reversed(self.requests))  # pop() takes the next one
        self.injected: list[Request] = []
        self.faults_injected: Counter[tuple[int, int]] = Counter()
        self.outage_s = 0.0

    # -- the emulator's control API ------------------------------------------------------------
    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.base + path, json=body, timeout=HTTP_TIMEOUT) as resp:
            data = await resp.json(content_type=None)
            if resp.status != 200:
                raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {data}")
            return data

    async def inject(self, herald: HeraldProcess | None) -> None:
        """The next request; `herald` None while no Herald runs."""
        if not self.queue:
            return
        request = self.queue.pop()
        request.phase = "down" if herald is None else "up" if herald.is_ready() else "starting"
        c = request.conversation
        content = f"send {self.args.sends} [{request.tag}]"
        if c.scene == "c2c":
            answer = await self.call("POST", f"/_sim/c2c/{c.target}/messages", {"content": content})
        else:
            body = {"member_openid": c.member, "content": content, "at_bot": True}
            answer = await self.call("POST", f"/_sim/groups/{c.target}/messages", body)
        request.msg_id = answer["msg_id"]
        self.injected.append(request)

    async def fail_next(self, count: int, fault: tuple[int, int]) -> None:
        if count > 0:
            status, code = fault
            await self.call(
                "POST", "/_sim/faults", {"kind": "fail_next", "count": count, "status": status, "code": code}
            )
            self.faults_injected[fault] += count
            print(
                f"  [{self.clock():6.1f}s] fault: the next {count} OpenAPI calls answer {status} {code}",
                flush=True,
            )

    async def fault(self, kinds: list[str]) -> float:
        """Inject the faults due now; the seconds the platform was unreachable."""
        unreachable = 0.0
        for kind in kinds:
            if kind == "5xx":
                await self.fail_next(self.args.burst_5xx, FAULT_5XX)
            elif kind == "429":
                await self.fail_next(self.args.burst_429, FAULT_429)
            elif self.args.outage > 0:
                await self.outage(self.args.outage)
                unreachable += self.args.outage
        return unreachable

    async def outage(self, seconds: float) -> None:
        print(f"  [{self.clock():6.1f}s] outage: the platform unreachable for {seconds:g} s", flush=True)
        os.kill(self.sim_pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            os.kill(self.sim_pid, signal.SIGCONT)
        self.outage_s += seconds

    async def transcript(self, c: Conversation) -> list[dict[str, Any]]:
        data = await self.call("GET", f"/_sim/transcript?scene={c.scene}&target={c.target}")
        entries: list[dict[str, Any]] = data["entries"]
        return entries

    async def accepted(self) -> dict[Conversation, list[dict[str, Any]]]:
        return {
            c: [e for e in await self.transcript(c) if e.get("direction") == "out" and e.get("status") == 200]
            for c in self.conversations
        }

    async def request_total(self) -> int:
        return int((await self.call("GET", "/_sim/requests?since=999999999"))["total"])

    # -- the run -----------------------------------------------------------------------------------
    async def run(self, herald: HeraldProcess, db_url: str) -> dict[str, Any]:
        args = self.args
        await herald.start()
        if not await herald.ready(60):
            raise RuntimeError(f"herald run did not connect within 60 s; see {herald.log}")
        kills = args.kills
        faults = [(kills // 3, "5xx"), (kills // 2, "429"), ((2 * kills) // 3, "outage")]
        for k in range(kills):
            cycles_left = kills - k
            reserved = min(len(self.queue), args.while_down * cycles_left)
            up = math.ceil((len(self.queue) - reserved) / cycles_left)
            uptime = self.rng.uniform(args.min_up, args.max_up)
            started = time.monotonic()
            due = [kind for at, kind in faults if at == k]
            for i in range(max(up, 1)):
                if i < up:
                    await asyncio.sleep(max(0.0, started + uptime * (i + 1) / (up + 1) - time.monotonic()))
                    await self.inject(herald)
                if i == 0 and due:
                    # Once Herald is up and has work: a fault at startup would hit only the gateway.
                    await herald.ready(max(0.0, started + uptime - time.monotonic()))
                    started += await self.fault(due)
            await asyncio.sleep(max(0.0, started + uptime - time.monotonic()))
            await herald.kill()
            down = min(args.while_down, len(self.queue))
            for _ in range(down):
                await self.inject(None)
            print(
                f"  [{self.clock():6.1f}s] kill {k + 1}/{kills} after {time.monotonic() - started:.1f} s; "
                f"{down} injected while down, {len(self.queue)} to go",
                flush=True,
            )
            await asyncio.sleep(args.down_s)
            await herald.start()
        if not await herald.ready(60):
            print(
                f"  herald did not connect within 60 s after the last restart; see {herald.log}", flush=True
            )
        while self.queue:
            await self.inject(herald)
        kill_phase = self.clock()
        print(f"  [{kill_phase:6.1f}s] all {len(self.injected)} requests injected; draining", flush=True)
        drained = await self.drain(db_url, herald)
        drain_s = self.clock() - kill_phase
        print(f"  [{self.clock():6.1f}s] drain ended: {drained}", flush=True)
        await herald.stop()
        return {"kill_phase_s": round(kill_phase, 1), "drain_s": round(drain_s, 1), "drain": drained}

    async def drain(self, db_url: str, herald: HeraldProcess) -> str:
        expected = {s for r in self.injected for s in r.expected(self.args.sends)}
        deadline = time.monotonic() + self.args.drain_s
        engine = create_async_engine(db_url)
        last_total, quiet_since = -1, time.monotonic()
        try:
            while time.monotonic() < deadline:
                accepted = await self.accepted()
                got = {e.get("content") for entries in accepted.values() for e in entries}
                if expected <= got:
                    await asyncio.sleep(self.args.settle_s)  # a late duplicate still shows
                    return "every expected send accepted"
                total = await self.request_total()
                if total != last_total:
                    last_total, quiet_since = total, time.monotonic()
                busy = await pending(engine)
                if not busy and herald.is_ready() and time.monotonic() - quiet_since >= self.args.quiet_s:
                    return (
                        f"Herald connected, nothing pending in its database, "
                        f"no platform request for {self.args.quiet_s:g} s"
                    )
                await asyncio.sleep(1.0)
            return f"the drain limit ({self.args.drain_s:g} s) passed"
        finally:
            await engine.dispose()


async def pending(engine: Any) -> int:
    """Turns and outbox items still pending (0 while the tables do not exist yet)."""
    try:
        async with engine.connect() as conn:
            turns = await conn.scalar(text("select count(*) from agent_turns where status = 'pending'"))
            items = await conn.scalar(text("select count(*) from outbox_items where state = 'pending'"))
    except Exception:  # an unmigrated or locked database counts as busy
        return 1
    return int(turns or 0) + int(items or 0)


async def outbox_report(db_url: str) -> tuple[Counter[str], list[dict[str, Any]], list[dict[str, Any]]]:
    """Outbox states; items whose outcome is unknown; other items that were not delivered."""
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        text(
                            "select id, conversation, origin, state, error_kind, code, reason, segments"
                            " from outbox_items"
                        )
                    )
                )
                .mappings()
                .all()
            )
    finally:
        await engine.dispose()
    states: Counter[str] = Counter(str(r["state"]) for r in rows)
    unknown, undelivered = [], []
    for r in rows:
        item = {
            "id": r["id"],
            "conversation": r["conversation"],
            "origin": r["origin"],
            "state": r["state"],
            "code": r["code"],
            "reason": r["reason"],
            "texts": segment_texts(r["segments"]),
        }
        if (
            r["state"] == "unknown"
            or r["error_kind"] == "outcome_unknown"
            or "outcome unknown" in (r["reason"] or "").lower()
        ):
            unknown.append(item)
        elif r["state"] != "delivered":
            undelivered.append(item)
    return states, unknown, undelivered


def segment_texts(raw: str | None) -> list[str]:
    try:
        segments = json.loads(raw or "[]")
    except ValueError:
        return []
    return [str(s.get("text")) for s in segments if isinstance(s, dict) and s.get("text") is not None]


def analyse(
    soak: Soak, accepted: dict[Conversation, list[dict[str, Any]]], unknown_texts: set[str], seen: set[str]
) -> dict[str, Any]:
    sends = soak.args.sends
    rank: dict[str, tuple[int, int]] = {}
    by_conversation: dict[Conversation, list[Request]] = {}
    for request in soak.injected:
        by_conversation.setdefault(request.conversation, []).append(request)
    for requests in by_conversation.values():
        for order, request in enumerate(requests):
            for part, content in enumerate(request.expected(sends)):
                rank[content] = (order, part)
    inbound_lost: list[Request] = []
    outbound_lost: list[str] = []
    outbound_unknown: list[str] = []
    duplicated: Counter[str] = Counter()
    duplicates: list[str] = []
    out_of_order: list[str] = []
    unexpected: list[str] = []
    for c in soak.conversations:
        entries = accepted.get(c, [])
        copies = Counter(str(e.get("content")) for e in entries)
        first_seen: set[str] = set()
        highest: tuple[int, int] = (-1, -1)
        for e in entries:
            content = str(e.get("content"))
            if content not in rank:
                unexpected.append(f"{c.scene}:{c.target}: {content[:80]!r}")
                continue
            if content in first_seen:
                duplicated[str(e.get("kind"))] += 1
                duplicates.append(f"{content} ({e.get('kind')})")
                continue
            first_seen.add(content)
            if rank[content] < highest:
                out_of_order.append(content)
            else:
                highest = rank[content]
        for request in by_conversation.get(c, []):
            expected = request.expected(sends)
            if not any(copies[s] for s in expected):
                inbound_lost.append(request)
                continue
            for s in expected:
                if not copies[s]:
                    (outbound_unknown if s in unknown_texts else outbound_lost).append(s)
    return {
        "expected_sends": len(soak.injected) * (sends + 1),
        "accepted_sends": sum(len(v) for v in accepted.values()),
        "inbound_lost": len(inbound_lost),
        "inbound_lost_by_phase": dict(Counter(r.phase for r in inbound_lost)),
        "inbound_lost_seen_by_model": sum(r.tag in seen for r in inbound_lost),
        "inbound_lost_tags": [f"{r.tag} ({r.phase})" for r in inbound_lost],
        "outbound_lost": len(outbound_lost),
        "outbound_lost_sends": outbound_lost,
        "outbound_missing_outcome_unknown": outbound_unknown,
        "duplicated": sum(duplicated.values()),
        "duplicated_by_kind": dict(duplicated),
        "duplicates": duplicates,
        "out_of_order": len(out_of_order),
        "out_of_order_sends": out_of_order,
        "unexpected": len(unexpected),
        "unexpected_sends": unexpected,
    }


def refusals(requests: list[dict[str, Any]], injected: Counter[tuple[int, int]]) -> dict[str, Any]:
    codes: Counter[tuple[int, int]] = Counter(
        (int(r["status"]), int(r["code"] or 0)) for r in requests if r.get("code") or int(r["status"]) >= 400
    )
    answered_faults = 0
    for fault, count in injected.items():
        taken = min(count, codes[fault])
        codes[fault] -= taken
        answered_faults += taken
    dedup = sum(n for (status, code), n in codes.items() if code == DUPLICATE_CODE)
    by_code = Counter[str]()
    for (status, code), n in codes.items():
        if n > 0 and code != DUPLICATE_CODE:
            by_code[f"{code} (HTTP {status})"] += n
    return {
        "requests": len(requests),
        "platform_refusals": sum(by_code.values()),
        "refusals_by_code": dict(by_code.most_common()),
        "passive_resends_deduplicated": dedup,
        "injected_faults_answered": answered_faults,
    }


FAILURES = ("inbound_lost", "outbound_lost", "duplicated", "out_of_order", "unexpected", "platform_refusals")


def report(args: argparse.Namespace, figures: dict[str, Any]) -> None:
    def line(label: str, value: Any, note: str = "") -> None:
        print(f"  {label:<34}{value!s:>7}{'   ' + note if note else ''}")

    def listing(values: list[str], limit: int = 20) -> None:
        for value in values[:limit]:
            print(f"      {value}")
        if len(values) > limit:
            print(f"      … and {len(values) - limit} more")

    f = figures
    print()
    print(COUNTING)
    print()
    print(
        f"soak: db={args.db} users={args.users} groups={args.groups} requests={args.requests} "
        f"sends={args.sends} kills={args.kills} up={args.min_up:g}-{args.max_up:g}s "
        f"while_down={args.while_down} seed={args.seed} "
        f"burst_5xx={args.burst_5xx} burst_429={args.burst_429} outage={args.outage:g}s"
    )
    line("duration (kill phase / drain)", f"{f['kill_phase_s']}s/{f['drain_s']}s", f"drain: {f['drain']}")
    line("herald launches", f["launches"])
    line("requests injected", f["requests_injected"], f"by phase: {f['requests_by_phase']}")
    line("expected sends", f["expected_sends"])
    line("accepted sends", f["accepted_sends"])
    line(
        "* inbound lost",
        f["inbound_lost"],
        f"by phase: {f['inbound_lost_by_phase']}; seen by the model: {f['inbound_lost_seen_by_model']}",
    )
    listing(f["inbound_lost_tags"])
    line("* outbound lost", f["outbound_lost"])
    listing(f["outbound_lost_sends"])
    line("* duplicated", f["duplicated"], f"by kind of the extra copy: {f['duplicated_by_kind']}")
    listing(f["duplicates"])
    line("* out of order", f["out_of_order"])
    listing(f["out_of_order_sends"])
    line("* unexpected", f["unexpected"])
    listing(f["unexpected_sends"])
    line("* platform refusals", f["platform_refusals"], f"by code: {f['refusals_by_code']}")
    line("passive resends deduplicated", f["passive_resends_deduplicated"], "(40054005)")
    line("injected faults answered", f["injected_faults_answered"], f"of {f['injected_faults']}")
    line(
        "outcome unknown",
        len(f["outcome_unknown"]),
        f"missing among them: {len(f['outbound_missing_outcome_unknown'])}",
    )
    for item in f["outcome_unknown"]:
        print(
            f"      {item['conversation']} {item['origin']} {item['texts']} "
            f"state={item['state']}: {item['reason']}"
        )
    line("outbox items by state", "", str(f["outbox_states"]))
    if f["outbox_not_delivered"]:
        print("    not delivered:")
        listing(
            [
                f"{i['conversation']} {i['texts']} {i['state']} code={i['code']}: {i['reason']}"
                for i in f["outbox_not_delivered"]
            ]
        )
    bad = {k: f[k] for k in FAILURES if f[k]}
    print(f"verdict: {'PASS' if not bad else 'FAIL ' + str(bad)}")
    result = {k: f[k] for k in (*FAILURES, "expected_sends", "accepted_sends")}
    result["missing_outcome_unknown"] = len(f["outbound_missing_outcome_unknown"])
    print("result: " + json.dumps(result))


def write_config(path: Path, base: str, llm_base: str, db_url: str) -> None:
    """`herald run`'s config: the emulator at `base`, the scripted model at `llm_base`."""
    path.write_text(
        f"""
{qq_toml(base)}
[llm]
provider = "openai"
base_url = "{llm_base}"
api_key = "soak"
model = "scripted"
timeout_s = 30

[storage]
url = "{db_url}"
""",
        encoding="utf-8",
    )


async def soak(
    args: argparse.Namespace, base: str, llm_base: str, record: Path, sim_pid: int, logs: Path
) -> int:
    # A connection per call: after an outage (SIGSTOP) the sim closes kept-alive connections.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http, database(args.db) as db_url:
        for url in (f"{base}/_sim/clock", f"{llm_base}/models"):
            await wait_up(http, url)
        config = logs / "herald.toml"
        write_config(config, base, llm_base, db_url)
        runner = Soak(args, base, http, sim_pid)
        herald = HeraldProcess(config, logs)
        try:
            timing = await runner.run(herald, db_url)
        finally:
            await herald.kill()
        accepted = await runner.accepted()
        log = await runner.call("GET", "/_sim/requests")
        states, unknown, undelivered = await outbox_report(db_url)
    seen = {line.split("\t")[0] for line in record.read_text(encoding="utf-8").splitlines()}  # noqa: ASYNC240 (once, at the end)
    unknown_texts = {t for item in unknown for t in item["texts"]}
    figures = {
        **timing,
        "launches": herald.launches,
        "requests_injected": len(runner.injected),
        "requests_by_phase": dict(Counter(r.phase for r in runner.injected)),
        **analyse(runner, accepted, unknown_texts, seen),
        **refusals(log["requests"], runner.faults_injected),
        "injected_faults": sum(runner.faults_injected.values()),
        "outcome_unknown": unknown,
        "outbox_states": dict(states),
        "outbox_not_delivered": undelivered,
    }
    report(args, figures)
    return 1 if any(figures[k] for k in FAILURES) else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--users", type=int, default=10, help="C2C conversations")
    parser.add_argument("--groups", type=int, default=0, help="group conversations (one member each)")
    parser.add_argument("--requests", type=int, default=6, help="requests per conversation")
    parser.add_argument("--sends", type=int, default=10, help="send_message_to_user calls per request")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs of herald run")
    parser.add_argument(
        "--min-up", type=float, default=1.0, help="shortest time from a launch to its kill (s)"
    )
    parser.add_argument(
        "--max-up", type=float, default=9.0, help="longest time from a launch to its kill (s)"
    )
    parser.add_argument("--down-s", type=float, default=0.5, help="time between a kill and the restart")
    parser.add_argument("--while-down", type=int, default=1, help="requests injected in each gap")
    parser.add_argument("--burst-5xx", type=int, default=0, help="OpenAPI calls answered HTTP 500, once")
    parser.add_argument(
        "--burst-429", type=int, default=0, help="OpenAPI calls answered HTTP 429 50002, once"
    )
    parser.add_argument("--outage", type=float, default=0.0, help="seconds the platform is unreachable, once")
    parser.add_argument("--drain-s", type=float, default=180.0, help="longest drain after the last request")
    parser.add_argument(
        "--quiet-s", type=float, default=10.0, help="drain ends after this long with nothing to do"
    )
    parser.add_argument("--settle-s", type=float, default=3.0, help="wait after the last expected send")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--logs", type=Path, help="directory for Herald's logs (default: a new temporary one)"
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep Herald's logs even when the soak passes"
    )
    args = parser.parse_args()
    if args.users + args.groups < 1 or args.requests < 1 or args.sends < 1 or args.kills < 0:
        parser.error("need at least one conversation, request and send, and kills >= 0")
    if not 0 < args.min_up <= args.max_up:
        parser.error("need 0 < --min-up <= --max-up")

    logs = args.logs or Path(tempfile.mkdtemp(prefix="herald-soak-"))
    logs.mkdir(parents=True, exist_ok=True)
    record = logs / "model.log"
    record.touch()
    sim_port, llm_port = free_port(), free_port()
    sim = multiprocessing.Process(
        target=run_sim, args=(sim_port,), kwargs={"request_log_limit": 1_000_000}, daemon=True
    )
    llm = multiprocessing.Process(target=run_llm, args=(llm_port, str(record)), daemon=True)
    sim.start()
    llm.start()
    code = 2
    try:
        assert sim.pid is not None
        code = asyncio.run(
            soak(
                args, f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{llm_port}/v1", record, sim.pid, logs
            )
        )
    finally:
        if sim.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(sim.pid, signal.SIGCONT)  # in case an outage was interrupted
        for process in (sim, llm):
            process.terminate()
            process.join(10)
        if code == 0 and not args.keep_logs and args.logs is None:
            shutil.rmtree(logs, ignore_errors=True)
        else:
            print(f"Herald's logs, the config and the model's record: {logs}")
    sys.exit(code)


if __name__ == "__main__":
    main()
