"""`herald run` (production) and `herald demo` (the emulator, Herald and a model on one machine)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from herald.cli import app, collector_paused
from herald.cli.storage import DEMO_STORAGE, sqlite_file
from herald.config import ConfigError, HeraldConfig, QQConfig, StorageConfig, load_config
from herald.llm import LocalModelError, MissingExtra

if TYPE_CHECKING:
    from herald.app import Herald
    from herald.sim.state import SimState

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Herald TOML config (HERALD_* variables also apply)."),
]
LogLevel = Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")]


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("alembic", "httpx", "httpx2", "openai", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop where it is installed (a dependency except on Windows): it costs
    Herald a fraction of asyncio's own loop in CPU per message (its sockets, timers and the
    database threads' wake-ups); else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


def load_or_exit(path: Path | None) -> HeraldConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(f"✗ {exc}", err=True)
        raise typer.Exit(2) from None


async def wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def run_herald(
    config: HeraldConfig,
    on_ready: str | None = None,
    beside: Callable[[Herald], Coroutine[Any, Any, None]] | None = None,
) -> None:
    """Run Herald until a signal; `beside` runs alongside once it has started."""
    with collector_paused():
        from herald.app import Herald

        herald = Herald(config)
    helper: asyncio.Task[None] | None = None
    try:
        await herald.start()
        if beside is not None:
            helper = asyncio.create_task(beside(herald))
        if on_ready:
            await herald.wait_ready()
            typer.echo(on_ready)
        await wait_for_signal()
    finally:
        if helper is not None:
            helper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await helper
        await herald.stop()


MODEL_NOTICE = "herald"  # the page banner's source


async def show_model_state(herald: Herald, sim: SimState, every_s: float = 1.0) -> None:
    """Keep the emulator page's banner on the model's state, so an apology never looks like a
    working model (the page polls the notice; this polls Herald's ModelHealth)."""
    shown = None
    while True:
        state = herald.model_health.describe()
        if state != shown:
            text = f"model {herald.model_description}: {state}"
            sim.set_notice(MODEL_NOTICE, text, "ok" if herald.model_health.ok else "error")
            shown = state
        await asyncio.sleep(every_s)


@app.command("run")
def run(
    config: ConfigOption = None,
    log_level: LogLevel = "info",
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            "-w",
            min=1,
            help="Start this many Herald processes on this machine, sharing the PostgreSQL database "
            "(each its own gateway shard, or all on the webhook port), and restart any that dies.",
        ),
    ] = 1,
) -> None:
    """Run Herald on its platforms (QQ Official, OneBot v11, or both) until SIGINT/SIGTERM."""
    settings = load_or_exit(config)
    if settings.qq is None and settings.onebot is None:
        typer.echo(
            "✗ config: no platform: set [qq] app_id and secret (or HERALD_QQ__APP_ID/SECRET) for a QQ "
            "Official bot, and/or an [onebot] section for a OneBot v11 account (docs/onebot.md)",
            err=True,
        )
        raise typer.Exit(2)
    setup_logging(log_level)
    if workers > 1:
        from herald.cli.workers import check_workers, run_workers

        problem = check_workers(settings, workers)
        if problem is not None:
            typer.echo(f"✗ {problem}", err=True)
            raise typer.Exit(2)
        raise typer.Exit(run_workers(config, log_level, settings, workers))
    from herald.serving import PortUnavailable

    try:
        run_loop(run_herald(settings))
    except (ConfigError, LocalModelError, MissingExtra, PortUnavailable) as exc:
        typer.echo(f"✗ {exc}", err=True)
        raise typer.Exit(2) from None


def demo_sim_state(settings: HeraldConfig) -> Path:
    """The emulator's state file, next to the demo's database: both must survive a restart
    together, or Herald's reply ledger would hold anchors the emulator no longer knows."""
    database = sqlite_file(settings.storage.url)
    return (database.parent if database else Path("data")) / "demo-sim.json"


async def run_demo(settings: HeraldConfig, port: int) -> None:
    from pydantic import SecretStr

    from herald.serving import PortUnavailable
    from herald.sim.app import serve
    from herald.sim.settings import SimSettings

    state_file = demo_sim_state(settings)
    async with contextlib.AsyncExitStack() as stack:
        try:
            sim = await stack.enter_async_context(serve(SimSettings(port=port), state_file=state_file))
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
                raise
            raise PortUnavailable(
                f"--port: the emulator cannot listen on 127.0.0.1:{port} ({exc.strerror}); another "
                "program holds the port (an earlier `herald demo` still running?): stop it, or "
                "choose another port (--port 0 takes any free one)"
            ) from exc
        s = sim.state.settings
        settings.qq = QQConfig(
            app_id=s.app_id, secret=SecretStr(s.secret), api_base=sim.base_url, token_url=sim.token_url
        )
        model = settings.llm.model
        if settings.llm.offers_tools:
            tries = "请向我连续发送3条测试消息   or   每分钟向我发送一次心跳   or   /help"
        else:
            tries = "hello   or   /every 1m 心跳   or   /help  ([llm] tools = false: chat only)"
        await run_herald(
            settings,
            beside=lambda herald: show_model_state(herald, sim.state),
            on_ready=(
                f"\nHerald demo is running (model: {model}).\n"
                f"  Chat as a QQ user:  {sim.base_url}/\n"
                f"  Try: {tries}\n"
                f"  Emulator state: {state_file} (kept across restarts, like the database)\n"
                f"  Stop with Ctrl-C.\n"
            ),
        )


@app.command("demo")
def demo(
    config: ConfigOption = None,
    port: Annotated[
        int, typer.Option(help="Port for the emulator and its chat page (0 = any free port).")
    ] = 8090,
    storage: Annotated[str | None, typer.Option(help=f"Database URL (default {DEMO_STORAGE}).")] = None,
    log_level: LogLevel = "warning",
) -> None:
    """Try Herald on this machine: the QQ emulator with its chat page, Herald, and a model."""
    from herald.serving import PortUnavailable
    from herald.sim.persist import StateFileError

    settings = load_or_exit(config)
    if storage is not None:
        settings.storage = StorageConfig(url=storage)
    elif "storage" not in settings.model_fields_set:
        settings.storage = StorageConfig(url=DEMO_STORAGE)
    setup_logging(log_level)
    try:
        if settings.qq is not None:
            typer.echo("[qq] is configured: the demo talks to that platform instead of the emulator.")
            asyncio.run(run_herald(settings, on_ready="Herald is running. Stop with Ctrl-C."))
        else:
            asyncio.run(run_demo(settings, port))
    except (ConfigError, LocalModelError, MissingExtra, StateFileError, PortUnavailable) as exc:
        typer.echo(f"✗ {exc}", err=True)
        raise typer.Exit(2) from None
