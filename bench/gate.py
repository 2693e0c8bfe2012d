"""The CPU cost per message of the gate: access lists, admin roles, messages per minute and tokens
per day (totals already in memory, as after each key's first message of the day), checked and
counted the way `Dispatcher.sink` does before a turn is stored. Goal: at most 0.2 ms per message.

    .venv/bin/python bench/gate.py
    .venv/bin/python bench/gate.py --messages 200000 --users 5000 --groups 200
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime

from herald.config import AccessConfig, LimitsConfig
from herald.core.clock import VirtualClock
from herald.core.events import InboundMessage
from herald.core.target import Scene, Target
from herald.gate import Gate, TokenLedger


def messages(count: int, users: int, groups: int, at: datetime) -> list[InboundMessage]:
    made = []
    for n in range(count):
        user = f"user-{n % users}"
        if n % 2:
            target, roles = Target(Scene.GROUP, f"group-{(n // 2) % groups}"), ("member",)
        else:
            target, roles = Target(Scene.C2C, user), ()
        made.append(InboundMessage(target, f"m{n}", user, "hello", at, author_roles=roles))
    return made


async def run(args: argparse.Namespace) -> None:
    clock = VirtualClock(datetime(2026, 7, 21, 2, 30, tzinfo=UTC))
    access = AccessConfig(
        deny_users=[f"troll-{n}" for n in range(100)],
        deny_groups=[f"spam-{n}" for n in range(100)],
        admins=[f"boss-{n}" for n in range(10)],
    )
    limits = LimitsConfig(
        user_messages_per_minute=20,
        group_messages_per_minute=60,
        user_tokens_per_day=100_000,
        group_tokens_per_day=1_000_000,
    )
    gate = Gate(access, limits, clock, TokenLedger(None, clock, "Asia/Shanghai"))
    batch = messages(args.messages, args.users, args.groups, clock.now())
    for event in batch[: args.users * 2]:  # each key's daily total loaded once, as in production
        await gate.check(event, None)
    refused = 0
    # Time moves on after every `users` messages, far enough that groups stay under their rate:
    # the figure is the cost of messages let through (refusals are cheaper).
    per_group = max(1.0, args.users / 2 / args.groups)
    step_s = 60.0 * per_group / limits.group_messages_per_minute * 1.05
    started = time.process_time()
    for n, event in enumerate(batch):
        verdict = await gate.check(event, None)
        if verdict.refusal is None:
            gate.admitted(event, n, verdict.admin)
        else:
            refused += 1
        if n % args.users == 0:
            await clock.advance(step_s)
    cpu = time.process_time() - started
    print(f"messages: {args.messages} (users {args.users}, groups {args.groups}), refused {refused}")
    print(f"gate_cpu_ms_per_message: {cpu * 1000 / args.messages:.4f} (goal <= 0.2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=50)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
