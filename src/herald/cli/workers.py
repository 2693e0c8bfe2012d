"""`herald run --workers N`: N Herald processes on this machine, one database, supervised.

Each worker is a plain `herald run` with its own instance name (`<[delivery] instance>-<k>`, stable
across restarts so a restarted worker takes its own leases and outbox items back at once) and:

- gateway transport: its own shard, `[k, N]` (the platform sends each shard its own guilds'
  events; private chats and groups arrive on shard 0, and every worker runs turns and delivers);
- webhook transport: the same port, shared with SO_REUSEPORT (the kernel spreads the platform's
  connections among the workers; the message dedup is the database's, so a redelivery that lands
  on another worker is still dropped).

Only worker 0 serves the console. A worker that exits is started again (after 1 s, doubling up to
a minute while it keeps dying within a minute of starting), except on a configuration error (exit
code 2), which stops them all; SIGINT or SIGTERM stops every worker gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from herald.config import HeraldConfig

log = logging.getLogger("herald.workers")

CONFIG_ERROR = 2  # `herald run`'s exit code for a configuration error: restarting cannot help
STABLE_S = 60.0  # a worker up this long is healthy again: its restart delay starts over
FIRST_DELAY_S = 1.0
MAX_DELAY_S = 60.0
STOP_TIMEOUT_S = 30.0


@dataclass
class Worker:
    index: int
    env: dict[str, str]
    process: asyncio.subprocess.Process | None = None
    started: float = 0.0
    delay_s: float = FIRST_DELAY_S
    restarts: int = 0
    exits: list[int] = field(default_factory=list)


def worker_env(config: HeraldConfig, index: int, count: int) -> dict[str, str]:
    """The `HERALD_*` overrides that make worker `index` of `count` its own instance."""
    env = {"HERALD_DELIVERY__INSTANCE": f"{config.delivery.instance}-{index}"}
    if config.qq is not None and config.qq.transport == "webhook":
        env["HERALD_QQ__WEBHOOK_REUSE_PORT"] = "true"
    else:
        env["HERALD_QQ__SHARD"] = f"[{index}, {count}]"
    if index > 0:
        env["HERALD_CONSOLE__ENABLED"] = "false"
    return env


def check_workers(config: HeraldConfig, count: int) -> str | None:
    """Why `count` workers cannot run with this configuration (None: they can)."""
    if count < 2:
        return None
    if not config.storage.url.startswith("postgresql"):
        return (
            f"--workers {count}: the workers share one database, which must be PostgreSQL "
            '([storage] url = "postgresql+asyncpg://..."); SQLite serves one process'
        )
    if config.onebot is not None:
        return (
            f"--workers {count}: a OneBot account connects to one Herald process ([onebot] port), "
            "so it runs with --workers 1; run a second account in another Herald with its own [onebot]"
        )
    if config.qq is not None and config.qq.transport != "webhook" and config.qq.shard != (0, 1):
        return (
            f"--workers {count} gives each worker its own shard ([k, {count}]): remove [qq] shard "
            f"(it says {list(config.qq.shard)}), or start the processes yourself, one per shard"
        )
    return None


class Supervisor:
    def __init__(self, argv: list[str], config: HeraldConfig, count: int) -> None:
        """`argv`: the `herald run` arguments each worker gets (config, log level)."""
        self.argv = argv
        self.workers = [Worker(k, worker_env(config, k, count)) for k in range(count)]
        self._stopping = asyncio.Event()
        self.failed: str | None = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, self._stopping.set)
        watchers = [asyncio.create_task(self._watch(worker)) for worker in self.workers]
        await self._stopping.wait()
        await self._stop_all()
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        if self.failed is not None:
            log.error("%s", self.failed)
            return CONFIG_ERROR
        return 0

    async def _start(self, worker: Worker) -> asyncio.subprocess.Process:
        env = {**os.environ, **worker.env}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "herald", "run", *self.argv, env=env, preexec_fn=_die_with_parent
        )
        worker.process, worker.started = process, time.monotonic()
        log.info("worker %d started (pid %d, %s)", worker.index, process.pid, _describe(worker.env))
        return process

    async def _watch(self, worker: Worker) -> None:
        while not self._stopping.is_set():
            process = await self._start(worker)
            code = await process.wait()
            worker.exits.append(code)
            if self._stopping.is_set():
                return
            if code == CONFIG_ERROR:
                self.failed = f"worker {worker.index} stopped with a configuration error; stopping all"
                self._stopping.set()
                return
            if time.monotonic() - worker.started >= STABLE_S:
                worker.delay_s = FIRST_DELAY_S
            log.warning(
                "worker %d (pid %d) exited with %d; starting it again in %.0f s",
                worker.index,
                process.pid,
                code,
                worker.delay_s,
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(worker.delay_s):
                    await self._stopping.wait()
            worker.delay_s = min(worker.delay_s * 2, MAX_DELAY_S)
            worker.restarts += 1

    async def _stop_all(self) -> None:
        running = [w.process for w in self.workers if w.process is not None and w.process.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await asyncio.gather(*(process.wait() for process in running))
        except TimeoutError:
            for process in running:
                if process.returncode is None:
                    log.warning(
                        "worker pid %d did not stop within %.0f s; killing it", process.pid, STOP_TIMEOUT_S
                    )
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            await asyncio.gather(*(process.wait() for process in running))


def _die_with_parent() -> None:
    """In the worker, before it runs: on Linux, the kernel sends it SIGTERM when the supervisor
    dies (even by SIGKILL), so no worker outlives it unsupervised."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _describe(env: dict[str, str]) -> str:
    return ", ".join(f"{key.removeprefix('HERALD_').lower()}={value}" for key, value in env.items())


def run_workers(config_path: Path | None, log_level: str, config: HeraldConfig, count: int) -> int:
    argv = ["--log-level", log_level]
    if config_path is not None:
        argv += ["--config", str(config_path)]
    return asyncio.run(Supervisor(argv, config, count).run())
