"""How well the embedded model calls Herald's tools: fixed prompts through the real model, behind its
real OpenAI-compatible HTTP server in its own process (the same server `herald demo` starts).

    .venv/bin/python bench/local_tools.py                          # every method, every prompt
    .venv/bin/python bench/local_tools.py --method router --cases held-out

The prompts: 22 fixed ones (`--cases fixed`) and 14 held out (`--cases held-out`), written once
and never used to tune the router's examples. Each prompt is one user message with Herald's system
prompt and Herald's own tool definitions (`herald.agent.tools.TOOL_DEFINITIONS`); the first model
response is judged:
* send N        exactly N `send_message_to_user` calls, each with non-empty text
* schedule      one `future_task` call with action=create and a per-minute cron (`* * * * *`)
* list          one `future_task` call with action=list
* cancel ID     one `future_task` call with action=delete and job_id=ID
* chat          no tool call and a non-empty answer in the user's language (CJK for Chinese prompts)
Printed: the share judged correct (overall and per kind), the time to the first reply (median,
max), and the server process's RSS. Methods: `router` (what Herald uses: the embedded model picks
an action under a grammar, `herald.llm.router`; its plain chat is a second, ordinary completion),
`default` (llama.cpp's chat template from the GGUF, tools passed as given) and
`chatml-function-calling` (llama-cpp-python's grammar-constrained tool calling for ChatML models,
`tool_choice: auto`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic_ai.messages import ModelRequest, UserPromptPart
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.settings import ModelSettings

from herald.agent.tools import TOOL_DEFINITIONS
from herald.config import AgentConfig
from herald.llm.local import SERVER_MODULE, LocalModelServer, find_local_gguf
from herald.llm.provider import openai_compatible
from herald.llm.router import ToolRouter

METHODS = ("router", "default", "chatml-function-calling")


@dataclass(frozen=True)
class Case:
    prompt: str
    kind: str  # send | schedule | list | cancel | chat
    count: int = 0
    job_id: str = ""
    chinese: bool = False


CASES = [
    Case("请向我连续发送3条测试消息", "send", count=3, chinese=True),
    Case("给我发2条消息，内容随意", "send", count=2, chinese=True),
    Case("连续发送5条测试消息给我", "send", count=5, chinese=True),
    Case("发一条消息说你好", "send", count=1, chinese=True),
    Case("Send me 3 test messages, one after another.", "send", count=3),
    Case("Please send me two separate messages.", "send", count=2),
    Case("Send me 4 messages counting from 1 to 4.", "send", count=4),
    Case("每分钟向我发送一次心跳", "schedule", chinese=True),
    Case("每分钟提醒我喝水", "schedule", chinese=True),
    Case("Send me a heartbeat every minute.", "schedule"),
    Case("Remind me every minute to stretch.", "schedule"),
    Case("列出我的定时任务", "list", chinese=True),
    Case("我现在有哪些定时任务？", "list", chinese=True),
    Case("List my scheduled tasks.", "list"),
    Case("取消任务 a1b2c3d4", "cancel", job_id="a1b2c3d4", chinese=True),
    Case("Cancel the task with id 9f8e7d6c.", "cancel", job_id="9f8e7d6c"),
    Case("你好，今天过得怎么样？", "chat", chinese=True),
    Case("用一句话介绍一下你自己", "chat", chinese=True),
    Case("北京是哪个国家的首都？", "chat", chinese=True),
    Case("Hello! How are you today?", "chat"),
    Case("What is the capital of France?", "chat"),
    Case("Tell me a short joke.", "chat"),
]

# Written once and never used to tune the router's examples: how it does on wording it has not seen.
HELD_OUT = [
    Case("麻烦给我发6条测试", "send", count=6, chinese=True),
    Case("发两条消息给我看看", "send", count=2, chinese=True),
    Case("Could you send me 3 quick notes?", "send", count=3),
    Case("Shoot me one message that says ready", "send", count=1),
    Case("每分钟跟我说一次加油", "schedule", chinese=True),
    Case("Every minute, tell me the time.", "schedule"),
    Case("我的提醒都有哪些", "list", chinese=True),
    Case("Do I have any tasks scheduled?", "list"),
    Case("把任务 c0ffee12 删掉", "cancel", job_id="c0ffee12", chinese=True),
    Case("Please remove job deadbeef.", "cancel", job_id="deadbeef"),
    Case("你喜欢什么颜色？", "chat", chinese=True),
    Case("给我讲讲长城", "chat", chinese=True),
    Case("Why is the sky blue?", "chat"),
    Case("Good evening, Herald.", "chat"),
]

CJK = re.compile(r"[\u4e00-\u9fff]")


def tools() -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description or "",
                "parameters": t.parameters_json_schema,
            },
        }
        for t in TOOL_DEFINITIONS
    ]


def judge(case: Case, message: dict[str, Any]) -> bool:
    calls = message.get("tool_calls") or []
    named = [(c["function"]["name"], _args(c["function"].get("arguments"))) for c in calls]
    if case.kind == "send":
        return len(named) == case.count and all(
            name == "send_message_to_user" and str(args.get("text") or "").strip() for name, args in named
        )
    if case.kind == "schedule":
        return (
            len(named) == 1
            and named[0][0] == "future_task"
            and named[0][1].get("action") == "create"
            and (" ".join(str(named[0][1].get("cron_expression") or "").split()) == "* * * * *")
        )
    if case.kind == "list":
        return len(named) == 1 and named[0][0] == "future_task" and named[0][1].get("action") == "list"
    if case.kind == "cancel":
        return (
            len(named) == 1
            and named[0][0] == "future_task"
            and named[0][1].get("action") == "delete"
            and named[0][1].get("job_id") == case.job_id
        )
    text = str(message.get("content") or "").strip()
    return not named and bool(text) and bool(CJK.search(text)) == case.chinese


def _args(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def ask_server(
    http: aiohttp.ClientSession, server: LocalModelServer, prompt: str, max_tokens: int
) -> dict[str, Any]:
    """The model's first response to `prompt`, tools offered the OpenAI way."""
    body = {
        "model": server.model_alias,
        "messages": [
            {"role": "system", "content": AgentConfig().system_prompt},
            {"role": "user", "content": prompt},
        ],
        "tools": tools(),
        "tool_choice": "auto",
        "temperature": 0,
        "max_tokens": max_tokens,
    }
    async with http.post(f"{server.base_url}/chat/completions", json=body) as response:
        answer = await response.json()
    return answer["choices"][0]["message"] if response.status == 200 else {}


async def ask_router(router: ToolRouter, prompt: str, max_tokens: int) -> dict[str, Any]:
    """The router's first response to `prompt` (what Herald's agent gets), as an OpenAI message."""
    parameters = ModelRequestParameters(function_tools=TOOL_DEFINITIONS, allow_text_output=True)
    request = ModelRequest(parts=[UserPromptPart(prompt)], instructions=AgentConfig().system_prompt)
    response = await router.request([request], ModelSettings(max_tokens=max_tokens), parameters)
    calls = [
        {"function": {"name": call.tool_name, "arguments": call.args_as_json_str()}}
        for call in response.tool_calls
    ]
    return {"tool_calls": calls, "content": response.text or ""}


async def run_method(method: str, cases: list[Case], max_tokens: int) -> None:
    command = [sys.executable, "-m", SERVER_MODULE]
    if method not in ("default", "router"):
        command += ["--chat_format", method]
    server = LocalModelServer(find_local_gguf(), command=command)
    await server.start()
    chat = openai_compatible(server.base_url, "local", server.model_alias, legacy_max_tokens=True)
    router = ToolRouter(chat, server.base_url, server.model_alias)
    results: dict[str, list[bool]] = {}
    latencies: list[float] = []
    peak = 0.0
    try:
        async with aiohttp.ClientSession() as http:
            for case in cases:
                started = time.perf_counter()
                if method == "router":
                    message = await ask_router(router, case.prompt, max_tokens)
                else:
                    message = await ask_server(http, server, case.prompt, max_tokens)
                latencies.append(time.perf_counter() - started)
                ok = judge(case, message)
                results.setdefault(case.kind, []).append(ok)
                assert server._process is not None
                peak = max(peak, rss_mb(server._process.pid))
                shown = json.dumps(message, ensure_ascii=False)[:110]
                print(f"  {'✓' if ok else '✗'} {case.kind:8} {case.prompt[:34]:34} {shown}")
    finally:
        await router.close()
        await server.stop()
    total = [ok for oks in results.values() for ok in oks]
    print(f"method {method}: {sum(total)}/{len(total)} correct ({100 * sum(total) / len(total):.0f} %)")
    for kind, oks in results.items():
        print(f"  {kind:8} {sum(oks)}/{len(oks)}")
    print(
        f"  first reply: median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s; "
        f"server RSS peak {peak:.0f} MB"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--method", choices=METHODS, action="append")
    parser.add_argument(
        "--cases", choices=("fixed", "held-out", "all"), default="all", help="which prompt set to run"
    )
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    cases = {"fixed": CASES, "held-out": HELD_OUT, "all": CASES + HELD_OUT}[args.cases]
    print(f"model: {find_local_gguf().name}; {len(cases)} prompts ({args.cases})")
    for method in args.method or METHODS:
        await run_method(method, cases, args.max_tokens)


if __name__ == "__main__":
    asyncio.run(main())
