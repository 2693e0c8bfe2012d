"""`herald policy show TARGET`: the policy a turn in that conversation gets, each value with the
layer it came from (a `[policy.*]` table, the console, `[agent]`/`[llm]`, or the default)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from herald.cli import app
from herald.cli.run import ConfigOption, load_or_exit
from herald.cli.storage import sqlite_file, storage_url

policy_app = typer.Typer(help="Per-scope policy: what a conversation's turns get.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
SHOWN_CHARS = 120  # of a long system prompt
UserOption = Annotated[str | None, typer.Option("--user", help="The author's openid (\\[policy.users.*]).")]
GuildOption = Annotated[str | None, typer.Option("--guild", help="A channel's guild (\\[policy.guilds.*]).")]


@policy_app.command("show")
def show_command(
    target: Annotated[str, typer.Argument(help="c2c:OPENID, group:GROUP_OPENID, channel:ID or dm:GUILD_ID")],
    user: Annotated[
        str | None, typer.Option("--user", help="The author's openid (for \\[policy.users.*]).")
    ] = None,
    guild: Annotated[
        str | None, typer.Option("--guild", help="A channel's guild (for \\[policy.guilds.*]).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Print the effective policy of TARGET, and where each value came from."""
    from herald.agent.policy import FIELDS, Policies
    from herald.agent.settings import KEYS, AgentSettings
    from herald.core.clock import SystemClock
    from herald.core.target import Target
    from herald.store import Database
    from herald.store.settings import SettingsStore

    settings = load_or_exit(config)
    try:
        where = Target.parse(target)
    except ValueError as exc:
        typer.echo(f"bad target {target!r}: {exc}", err=True)
        raise typer.Exit(2) from None

    async def load(url: str) -> SettingsStore:
        db = Database(url)
        try:
            await db.migrate()
            stored = SettingsStore(db, SystemClock(), KEYS)
            await stored.load()
            return stored
        finally:
            await db.dispose()

    # The console's edits live in the database; without one there are none to show.
    path = sqlite_file(settings.storage.url)
    stored = asyncio.run(load(storage_url(settings))) if path is None or path.exists() else None
    if stored is None:
        typer.echo(f"(no database at {path}: no console edits to include)", err=True)
    policies = Policies(settings.policy, settings.agent, settings.llm, AgentSettings(settings.agent, stored))
    policy = policies.resolve(where, user, guild)
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"policy of {where.key}" + (f", author {user}" if user else ""))
    table.add_column("key", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("from", no_wrap=True)
    for name in FIELDS:
        value = getattr(policy, name)
        if isinstance(value, frozenset):
            shown = ", ".join(sorted(value)) or "(none)"
        elif value is None:
            shown = {"tools": "(every tool)", "model": "(the primary model)"}.get(name, "(unset)")
        else:
            shown = str(value)
            if len(shown) > SHOWN_CHARS:
                shown = shown[:SHOWN_CHARS] + f"… ({len(shown)} characters)"
        table.add_row(name, Text(shown), Text(policy.sources[name]))  # [policy.*] is not markup
    Console().print(table)
