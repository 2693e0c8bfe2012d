"""What a turn's policy and history bookkeeping cost: CPU per policy lookup, with many scoped
tables, and per split of a history window into the turns kept and those due for the summary.

    .venv/bin/python bench/policy.py [--tables 1000] [--lookups 100000]

Every group, channel and user of `--tables` each has a table; lookups spread over them and over
scopes without one. The goal is ≤ 0.2 ms CPU per turn for the lookup.
"""

from __future__ import annotations

import argparse
import json
import time

from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart

from herald.agent.history import split_history
from herald.agent.policy import Policies
from herald.config import AgentConfig, LLMConfig, PolicyConfig
from herald.core.target import Scene, Target


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--lookups", type=int, default=100_000)
    args = parser.parse_args()
    n = args.tables
    layers = PolicyConfig.model_validate(
        {
            "language": "zh",
            "scenes": {"group": {"answer_unmentioned": True}, "c2c": {"temperature": 0.5}},
            "groups": {
                f"G{i}": {"system_prompt": f"persona {i}", "tools": ["send_message_to_user"]}
                for i in range(n)
            },
            "channels": {f"C{i}": {"history_turns": 5} for i in range(n)},
            "guilds": {f"X{i}": {"language": "en"} for i in range(n)},
            "users": {f"U{i}": {"model": None, "history_tokens": 2000} for i in range(n)},
        }
    )
    policies = Policies(layers, AgentConfig(), LLMConfig())
    targets = [
        (Target(Scene.GROUP, f"G{i % (2 * n)}"), f"U{i % (3 * n)}", None)
        if i % 3 == 0
        else (Target(Scene.CHANNEL, f"C{i % (2 * n)}"), f"U{i}", f"X{i % n}")
        if i % 3 == 1
        else (Target(Scene.C2C, f"U{i % (2 * n)}"), f"U{i % (2 * n)}", None)
        for i in range(1000)
    ]
    cpu0 = time.process_time()
    for i in range(args.lookups):
        target, author, guild = targets[i % len(targets)]
        policies.resolve(target, author, guild)
    cpu = time.process_time() - cpu0
    # The window a turn loads with the default budget (20 turns + 10 summary candidates).
    window: list[tuple[int, list[ModelMessage]]] = [
        (
            i,
            [
                ModelRequest(parts=[UserPromptPart(f"message {i} " * 20)]),
                ModelResponse(parts=[TextPart("ok " * 30)]),
            ],
        )
        for i in range(30)
    ]
    splits = max(1, args.lookups // 10)
    cpu1 = time.process_time()
    for _ in range(splits):
        split_history(window, 20, 6000)
    split_cpu = time.process_time() - cpu1
    print(
        json.dumps(
            {
                "tables": 4 * n,
                "lookups": args.lookups,
                "cpu_us_per_lookup": round(cpu / args.lookups * 1e6, 2),
                "cpu_us_per_history_split": round(split_cpu / splits * 1e6, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
