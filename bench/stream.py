"""Time from the model's first token to the first streamed chunk arriving at the emulator.

Three processes: the emulator (`herald sim`), a streaming OpenAI-compatible model over real HTTP
(this file's `model` server: server-sent events, the first token at once, then one token every
`--token-gap-ms`), and Herald (this process, `[llm] provider = "openai"` pointed at the model).
For each of `--turns` C2C messages (one at a time), the model writes down the wall-clock time it
sent its first token; the emulator's transcript has the wall-clock time its first
`stream_messages` frame for that message arrived (its clock has no offset here). The difference is
Herald's whole path: SSE parsing in the provider client, pydantic-ai's stream, the reply's outbox
row, the reply ledger's reservation and the frame's HTTP request.

    .venv/bin/python bench/stream.py                  # SQLite
    .venv/bin/python bench/stream.py --db postgresql --turns 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from herald.app import Herald  # noqa: E402
from herald.config import HeraldConfig, LLMConfig, QQConfig, StorageConfig  # noqa: E402

TOKENS = ["流式", "回复", "的", "第一", "段", "，", "然后", "更多", "文字", "。"]


def run_model(port_out: Any, first_tokens: Any, gap_ms: int) -> None:
    """The model server: streams `TOKENS`; puts (user text, wall time of the first token) on a queue."""

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        user = next((m["content"] for m in reversed(body["messages"]) if m.get("role") == "user"), "")
        if isinstance(user, list):
            user = "".join(part.get("text", "") for part in user)
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "x",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": "bench",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(TOKENS)},
                            "finish_reason": "stop",
                        }
                    ],
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for number, token in enumerate(TOKENS):
            chunk = {
                "id": "x",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": "bench",
                "choices": [
                    {"index": 0, "delta": {"role": "assistant", "content": token}, "finish_reason": None}
                ],
            }
            await response.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
            if number == 0:
                first_tokens.put((str(user).strip(), time.time()))
            await asyncio.sleep(gap_ms / 1000)
        end = {
            "id": "x",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": "bench",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
        await response.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
        await response.write_eof()
        return response

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", completions)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_out.put(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(serve())


def run_sim(port_out: Any) -> None:
    from herald.sim.app import serve
    from herald.sim.settings import SimSettings

    async def main() -> None:
        async with serve(SimSettings(port=0, rate_limits=False)) as sim:
            port_out.put((sim.base_url, sim.token_url, sim.state.settings.app_id, sim.state.settings.secret))
            await asyncio.Event().wait()

    asyncio.run(main())


async def bench(args: argparse.Namespace) -> None:
    ctx = multiprocessing.get_context("spawn")
    sim_out, model_out, first_tokens = ctx.Queue(), ctx.Queue(), ctx.Queue()
    sim_proc = ctx.Process(target=run_sim, args=(sim_out,), daemon=True)
    model_proc = ctx.Process(target=run_model, args=(model_out, first_tokens, args.token_gap_ms), daemon=True)
    sim_proc.start()
    model_proc.start()
    base, token_url, app_id, secret = sim_out.get(timeout=60)
    model_port = model_out.get(timeout=60)
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite+aiosqlite:///{tmp}/bench.db" if args.db == "sqlite" else args.db
        config = HeraldConfig(
            qq=QQConfig(app_id=app_id, secret=SecretStr(secret), api_base=base, token_url=token_url),
            llm=LLMConfig(
                provider="openai",
                base_url=f"http://127.0.0.1:{model_port}/v1",
                api_key=SecretStr("bench"),
                model="bench",
                tools=False,
                client=args.llm_client,
            ),
            storage=StorageConfig(url=db_url),
        )
        herald = Herald(config)
        await herald.start()
        await herald.wait_ready()
        gaps: list[float] = []
        async with aiohttp.ClientSession() as http:
            for number in range(args.turns):
                user = f"bench-user-{number}"
                text = f"bench message {number}"
                async with http.post(f"{base}/_sim/c2c/{user}/messages", json={"content": text}) as resp:
                    assert resp.status == 200, await resp.text()
                said, first_token_at = await asyncio.to_thread(first_tokens.get, True, 60)
                assert text in said, (said, text)
                while True:
                    async with http.get(f"{base}/_sim/transcript?scene=c2c&target={user}") as resp:
                        entries = (await resp.json())["entries"]
                    frames = [
                        e for e in entries if e["direction"] == "out" and "stream" in e and e["code"] == 0
                    ]
                    if frames:
                        gaps.append((frames[0]["at"] - first_token_at) * 1000)
                        break
                    await asyncio.sleep(0.005)
                # Let the turn finish before the next one, so each first chunk is measured alone.
                done = False
                while not done:
                    async with http.get(f"{base}/_sim/transcript?scene=c2c&target={user}") as resp:
                        entries = (await resp.json())["entries"]
                    done = any(e.get("stream", {}).get("done") for e in entries)
                    await asyncio.sleep(0.01)
        await herald.stop()
    sim_proc.kill()
    model_proc.kill()
    cold = gaps.pop(0)  # the first turn also fetches the token and opens connections
    gaps.sort()
    print(f"first token -> first stream chunk at the emulator, {len(gaps)} warm turns ({args.db}):")
    p90 = gaps[int(len(gaps) * 0.9) - 1]
    print(f"  p50 {statistics.median(gaps):.1f} ms  p90 {p90:.1f} ms  max {gaps[-1]:.1f} ms")
    print(f"  the first (cold) turn: {cold:.1f} ms")
    print("  goal: <= 100 ms")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--token-gap-ms", type=int, default=50)
    parser.add_argument("--db", default="sqlite", help="sqlite, or a database URL")
    parser.add_argument("--llm-client", choices=["direct", "sdk"], help="[llm] client (default: Herald's)")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
