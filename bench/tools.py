"""What one round of an external tool adds to a turn, over the tool's own time.

    .venv/bin/python bench/tools.py [--calls 300] [--db sqlite|postgresql]

Herald runs against the emulator (its own process) with a scripted model that calls one tool per
turn: an MCP server over stdio (its own process, started by Herald), an MCP server over streamable
HTTP (its own process), and a plugin (in Herald's process). The tool measures its own run and
returns it. The round's cost is the time from the model's tool-call response to the next model
request, minus the tool's own time: storing the response and then the result with the turn (two
durable writes), validating and dispatching the call, the MCP transport, and preparing the next
model request. Printed per kind: p50 and p99 in ms (goal: ≤ 2 ms), and the p50 of the part
spent in the turn's durable writes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from common import APP_ID, SECRET, database, free_port, run_sim
from pydantic import SecretStr
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from herald.agent.turns import Turn
from herald.app import Herald, ModelChoice
from herald.config import (
    DeliveryConfig,
    HeraldConfig,
    McpServerConfig,
    QQConfig,
    QQDeliveryConfig,
    SchedulerConfig,
    StorageConfig,
)
from herald.plugin import Plugin

SERVER = Path(__file__).with_name("mcp_timed_server.py")

plugin = Plugin("bench")


@plugin.tool
def timed(n: int) -> str:
    """Return n and how long this call took, in ns."""
    started = time.perf_counter_ns()
    return f"{n} {time.perf_counter_ns() - started}"


class Rounds:
    """The scripted model: call `tool` once per turn, timing each round."""

    def __init__(self) -> None:
        self.tool = ""
        self.asked_at = 0.0
        self.costs: list[float] = []
        self.writes: list[float] = []  # ms of each round spent storing the turn
        self.writing = 0.0
        self.finished = asyncio.Event()
        self.model = FunctionModel(self.respond)

    async def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        now = time.perf_counter()
        last = messages[-1]
        results = (
            [p for p in last.parts if isinstance(p, ToolReturnPart)] if isinstance(last, ModelRequest) else []
        )
        if results:
            own_ns = int(str(results[0].content).split()[-1])
            self.costs.append((now - self.asked_at) * 1000 - own_ns / 1e6)
            self.writes.append(self.writing * 1000)
            self.finished.set()
            return ModelResponse(parts=[TextPart("ok")])
        self.writing = 0.0
        self.asked_at = time.perf_counter()
        return ModelResponse(parts=[ToolCallPart(self.tool, {"n": len(self.costs)})])


@contextlib.asynccontextmanager
async def http_server() -> AsyncIterator[str]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(sys.executable, str(SERVER), "http", str(port))
    try:
        for _ in range(200):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.kill()
        await process.wait()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> None:
    port = free_port()
    sim = multiprocessing.Process(target=run_sim, args=(port,), kwargs={"rate_limits": False}, daemon=True)
    sim.start()
    base = f"http://127.0.0.1:{port}"
    rounds = Rounds()
    try:
        async with aiohttp.ClientSession() as http, database(args.db) as url, http_server() as mcp_url:
            for _ in range(200):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(base + "/_sim/clock") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.05)
            config = HeraldConfig(
                qq=QQConfig(
                    app_id=APP_ID,
                    secret=SecretStr(SECRET),
                    api_base=base,
                    delivery=QQDeliveryConfig(message_qps=1e9),
                ),
                storage=StorageConfig(url=url),
                delivery=DeliveryConfig(instance="bench"),
                scheduler=SchedulerConfig(enabled=False),
            )
            config.mcp.servers = {
                "stdio": McpServerConfig(command=sys.executable, args=[str(SERVER), "stdio"]),
                "http": McpServerConfig(url=mcp_url),
            }
            config.plugins.enabled = []  # only the bench's own plugin
            herald = Herald(config, model=ModelChoice(rounds.model), rate_limits=False, plugins=[plugin])
            await herald.start()
            assert herald.turns is not None
            save = herald.turns.save

            async def timed_save(turn: Turn, steps: int) -> None:
                started = time.perf_counter()
                await save(turn, steps)
                rounds.writing += time.perf_counter() - started

            herald.turns.save = timed_save  # type: ignore[method-assign]
            try:
                await herald.wait_ready()
                for server in herald.mcp_servers:
                    assert await server.wait_connected(30), server.error
                for kind, tool in (
                    ("MCP stdio", "stdio_timed"),
                    ("MCP HTTP", "http_timed"),
                    ("plugin", "bench_timed"),
                ):
                    rounds.tool, rounds.costs, rounds.writes = tool, [], []
                    for i in range(args.calls + 10):
                        async with http.post(
                            f"{base}/_sim/c2c/u-{tool}-{i}/messages", json={"content": "go"}
                        ) as r:
                            await r.read()
                        await asyncio.wait_for(rounds.finished.wait(), 60)
                        rounds.finished.clear()
                    costs = rounds.costs[10:]  # the first calls warm connections and caches
                    writes = rounds.writes[10:]
                    print(
                        f"{kind:10} {len(costs)} rounds: p50 {statistics.median(costs):.2f} ms, "
                        f"p99 {percentile(costs, 0.99):.2f} ms over the tool's own time "
                        f"(of which the turn's durable writes: p50 {statistics.median(writes):.2f} ms)"
                    )
            finally:
                await herald.stop()
    finally:
        sim.terminate()
        sim.join()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
