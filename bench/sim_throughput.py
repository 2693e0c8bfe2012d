"""How many sends per second the emulator answers on this machine.

Starts the sim in a subprocess with rate limits off, injects one inbound message per user through
the control API (not timed), then times concurrent loopback sends from aiohttp clients: each user's
4 passive replies (msg_id + msg_seq 1..4) plus proactive sends to users and groups. Every answer is
checked to be a 200, so the figure counts only accepted sends.

    .venv/bin/python bench/sim_throughput.py [--users 2000] [--concurrency 64] [--clients 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from typing import Any

import aiohttp

SERVER = """
import uvicorn
from herald.sim.app import create_app
from herald.sim.settings import SimSettings

settings = SimSettings(port={port}, rate_limits=False)
loop = "uvloop" if {uvloop} else "asyncio"
http = "httptools" if {httptools} else "h11"
uvicorn.run(create_app(settings), host="127.0.0.1", port={port}, log_level="warning",
            access_log=False, loop=loop, http=http, ws_ping_interval=None)
"""


def _installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _wait_ready(base: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(f"{base}/_sim/clock") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("the sim did not start")


async def _token(session: aiohttp.ClientSession, base: str) -> str:
    async with session.get(f"{base}/_sim/settings") as response:
        settings = await response.json()
    body = {"appId": settings["app_id"], "clientSecret": settings["secret"]}
    async with session.post(f"{base}/app/getAppAccessToken", json=body) as response:
        token: str = (await response.json())["access_token"]
        return token


def _workload(base: str, users: list[str], anchors: dict[str, str]) -> list[tuple[str, bytes]]:
    """(url, body) pairs: 4 passive replies per user, then one proactive C2C and one group send each."""
    jobs: list[tuple[str, bytes]] = []
    for user in users:
        for seq in range(1, 5):
            body = {"msg_type": 0, "content": "passive reply", "msg_id": anchors[user], "msg_seq": seq}
            jobs.append((f"{base}/v2/users/{user}/messages", json.dumps(body).encode()))
        jobs.append((f"{base}/v2/users/{user}/messages", b'{"msg_type":0,"content":"proactive"}'))
        jobs.append((f"{base}/v2/groups/g-{user}/messages", b'{"msg_type":0,"content":"group push"}'))
    return jobs


async def _client(base: str, users: list[str], concurrency: int, start_at: float) -> tuple[int, int, float]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        token = await _token(session, base)
        anchors: dict[str, str] = {}
        for user in users:
            async with session.post(f"{base}/_sim/c2c/{user}/messages", json={"content": "hi"}) as response:
                anchors[user] = (await response.json())["msg_id"]
        jobs = _workload(base, users, anchors)
        headers = {"Authorization": f"QQBot {token}", "Content-Type": "application/json"}
        ok = failed = 0
        queue = iter(jobs)

        async def worker() -> None:
            nonlocal ok, failed
            for url, body in queue:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status == 200:
                        ok += 1
                    else:
                        failed += 1

        await asyncio.sleep(max(0.0, start_at - time.time()))  # all client processes start together
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ok, failed, time.perf_counter() - began


def _client_process(base: str, users: list[str], concurrency: int, start_at: float, out: Any) -> None:
    out.put(asyncio.run(_client(base, users, concurrency, start_at)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64, help="in-flight requests per client process")
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    args = parser.parse_args()

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    code = SERVER.format(port=port, uvloop=_installed("uvloop"), httptools=_installed("httptools"))
    server = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        asyncio.run(_wait_ready(base))
        users = [f"user{i:05d}" for i in range(args.users)]
        shares = [users[i :: args.clients] for i in range(args.clients)]
        start_at = time.time() + 2.0 + args.users / 2000
        results: multiprocessing.Queue[tuple[int, int, float]] = multiprocessing.Queue()
        workers = [
            multiprocessing.Process(
                target=_client_process, args=(base, share, args.concurrency, start_at, results)
            )
            for share in shares
        ]
        for worker in workers:
            worker.start()
        outcomes = [results.get() for _ in workers]
        for worker in workers:
            worker.join()
    finally:
        server.terminate()
        server.wait()
    ok = sum(o[0] for o in outcomes)
    failed = sum(o[1] for o in outcomes)
    elapsed = max(o[2] for o in outcomes)
    print(
        f"{ok} sends accepted, {failed} refused, in {elapsed:.2f} s: {ok / elapsed:,.0f} sends/s "
        f"(clients={args.clients}, concurrency={args.concurrency}, httptools={_installed('httptools')}, "
        f"uvloop={_installed('uvloop')})"
    )


if __name__ == "__main__":
    main()
