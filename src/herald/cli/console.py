"""`herald console set-password`: the operator's console password (its argon2 hash is stored in
Herald's database, never the password). `herald console audit`: who changed which setting, when."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer

from herald.cli import app
from herald.cli.storage import storage_url
from herald.config import ConfigError, load_config
from herald.core.clock import SystemClock
from herald.store import Database

console_app = typer.Typer(help="The operator's console (\\[console] in the config).", no_args_is_help=True)
app.add_typer(console_app, name="console")


@console_app.command("set-password")
def set_password(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Herald TOML config (HERALD_* variables also apply)."),
    ] = None,
    stdin: Annotated[bool, typer.Option("--stdin", help="Read the password from standard input.")] = False,
) -> None:
    """Set the password the console's sign-in asks for (at least 8 characters)."""
    # Imported by the command that needs it: every `herald` command loads this module.
    from herald.console.auth import hash_password, store_password_hash

    try:
        settings = load_config(config)
    except ConfigError as exc:
        typer.echo(f"✗ config: {exc}", err=True)
        raise typer.Exit(2) from None
    if stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("new console password", hide_input=True, confirmation_prompt=True)
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        typer.echo(f"✗ {exc}", err=True)
        raise typer.Exit(2) from None

    async def store() -> None:
        db = Database(storage_url(settings))
        try:
            await db.migrate()
            await store_password_hash(db, hashed, SystemClock())
        finally:
            await db.dispose()

    asyncio.run(store())
    typer.echo("✓ console password set (stored as an argon2 hash)")


@console_app.command("audit")
def audit(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Herald TOML config (HERALD_* variables also apply)."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many changes, newest first.")] = 50,
) -> None:
    """The settings operators changed in the console: when, who, which key, before → after."""
    from zoneinfo import ZoneInfo

    from herald.console.settings import shorten
    from herald.store.settings import AuditEntry, recent_changes

    try:
        settings = load_config(config)
    except ConfigError as exc:
        typer.echo(f"✗ config: {exc}", err=True)
        raise typer.Exit(2) from None

    async def read() -> list[AuditEntry]:
        db = Database(storage_url(settings))
        try:
            await db.migrate()  # a database Herald has not run on since the audit came
            return await recent_changes(db, limit)
        finally:
            await db.dispose()

    changes = asyncio.run(read())
    if not changes:
        typer.echo("no settings changed yet")
    zone = ZoneInfo(settings.agent.timezone)
    for change in changes:
        before = shorten(change.old_value) if change.old_value is not None else "(configured value)"
        after = shorten(change.new_value) if change.new_value is not None else "(configured value)"
        when = f"{change.at.astimezone(zone):%Y-%m-%d %H:%M:%S}"
        typer.echo(f"{when}  {change.actor}  {change.key}: {before} → {after}")
