"""What the benchmark scripts share: the sim's credentials, a sim process, a throwaway database."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]

APP_ID = "102000001"
SECRET = "herald-sim-secret-0123456789abcd"


def qq_toml(base: str) -> str:
    """The `[qq]` section of a `herald run` config pointed at the emulator at `base`."""
    return (
        f'[qq]\napp_id = "{APP_ID}"\nsecret = "{SECRET}"\n'
        f'api_base = "{base}"\ntoken_url = "{base}/app/getAppAccessToken"\n'
    )


async def wait_up(http: aiohttp.ClientSession, url: str) -> None:
    """Until `url` answers 200 (a server process starting); at most 20 s."""
    for _ in range(400):
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(url) as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within 20 s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_sim(port: int, **settings: Any) -> None:
    """Target of a `multiprocessing.Process`: the sim on `port` until terminated."""
    from herald.sim.app import serve
    from herald.sim.settings import SimSettings

    async def forever() -> None:
        async with serve(SimSettings(port=port, **settings)):
            await asyncio.Event().wait()

    asyncio.run(forever())


@contextlib.asynccontextmanager
async def database(kind: str) -> AsyncIterator[str]:
    """A fresh SQLite file or PostgreSQL database for one run, removed afterwards."""
    if kind == "sqlite":
        path = Path(f"/tmp/herald-bench-{secrets.token_hex(4)}.db")
        try:
            yield f"sqlite+aiosqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)  # noqa: ASYNC240 (once, at exit)
        return
    name = f"herald_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
