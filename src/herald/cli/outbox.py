"""`herald outbox list|show|retry|cancel`: what is waiting, what failed and why, re-queueing and
cancelling."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from herald.cli import app
from herald.cli.storage import storage_url
from herald.config import ConfigError, HeraldConfig, load_config
from herald.core.clock import SystemClock
from herald.delivery import inspect
from herald.delivery.codec import load_details, load_segments
from herald.store.db import Database

outbox_app = typer.Typer(help="Inspect and retry the durable outbox.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="Herald TOML config file.")]
T = TypeVar("T")
ID_PREFIX = 8  # of a uuid4: unique in practice; `show` and `retry` say so when a prefix is not


def _run(config: Path | None, work: Callable[[Database, HeraldConfig], Awaitable[T]]) -> T:
    try:
        settings = load_config(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    url = storage_url(settings)

    async def main() -> T:
        db = Database(url)
        try:
            await db.migrate()
            return await work(db, settings)
        finally:
            await db.dispose()

    return asyncio.run(main())


@outbox_app.command("list")
def list_command(
    config: ConfigOption = None,
    state: Annotated[
        list[str] | None, typer.Option("--state", "-s", help="pending, delivered, failed, dead, unknown")
    ] = None,
    limit: Annotated[int, typer.Option(help="Newest first, at most this many.")] = 50,
) -> None:
    """Pending, failed, dead and unknown items (or the given states), with the reason for each.

    Ids are shown as a prefix that `show` and `retry` accept; it is never cut, whatever the width."""
    from rich.console import Console
    from rich.table import Table

    states = state or list(inspect.ATTENTION)
    rows = _run(config, lambda db, _settings: inspect.list_items(db, states, limit))
    table = Table(title=f"outbox: {', '.join(states)}")
    # What is copied or matched (id, state, code) never wraps; the rest folds to fit the terminal.
    for column, keep_whole in (
        ("id", True),
        ("conversation", False),
        ("state", True),
        ("tries", True),
        ("origin", False),
        ("next / finished", False),
        ("code", True),
        ("reason", False),
    ):
        table.add_column(column, no_wrap=keep_whole, overflow="fold")
    for row in rows:
        when = row.finished_at or row.next_attempt_at
        table.add_row(
            row.id[:ID_PREFIX],
            row.conversation,
            row.state,
            str(row.attempts),
            row.origin,
            when.strftime("%Y-%m-%d %H:%M:%S") if when else "",
            "" if row.code is None else str(row.code),
            row.reason or "",
        )
    Console().print(table)
    if not rows:
        typer.echo("nothing in these states")


@outbox_app.command("show")
def show_command(item_id: str, config: ConfigOption = None) -> None:
    """Everything about one item: its content, outcome, and the routes reserved for its parts."""

    async def work(db: Database, settings: HeraldConfig) -> None:
        row = await inspect.find_item(db, item_id)
        if row is None:
            typer.echo(f"no single outbox item matches {item_id!r}", err=True)
            raise typer.Exit(1)
        parts = await _item_details(db, settings, row.id)
        segments = [repr(segment) for segment in load_segments(row.segments)]
        detail = {
            "id": row.id,
            "conversation": row.conversation,
            "origin": row.origin,
            "trigger_id": row.trigger_id,
            "idempotency_key": row.idempotency_key,
            "state": row.state,
            "attempts": row.attempts,
            "created_at": row.created_at.isoformat(),
            "next_attempt_at": row.next_attempt_at.isoformat(),
            "finished_at": row.finished_at.isoformat() if row.finished_at else None,
            "code": row.code,
            "reason": row.reason,
            "error_kind": row.error_kind,
            "route": row.route,
            "anchor": row.anchor_id,
            "details": dict(load_details(row.details)),
            "platform_ids": json.loads(row.platform_ids) if row.platform_ids else [],
            "segments": segments,
            # What the platform recorded per part (QQ: the route it reserved for each).
            "parts": [dict(part) for part in parts],
        }
        typer.echo(json.dumps(detail, ensure_ascii=False, indent=2))

    _run(config, work)


async def _item_details(
    db: Database, settings: HeraldConfig, item_id: str
) -> tuple[tuple[tuple[str, str], ...], ...]:
    """The platform's own record of the item's parts; none without a configured platform."""
    from herald.app import configured_platforms
    from herald.delivery.platforms import Platforms

    try:
        platforms = Platforms(configured_platforms(settings, db, SystemClock()))
    except ConfigError:
        return ()
    return await platforms.item_details(item_id)


@outbox_app.command("retry")
def retry_command(item_id: str, config: ConfigOption = None) -> None:
    """Put a failed, dead or unknown item back in line; a running Herald delivers it on its next poll.

    An `unknown` item may already have arrived: resending it may show the user a duplicate."""

    async def work(db: Database, settings: HeraldConfig) -> None:
        row = await inspect.find_item(db, item_id)
        if row is None:
            typer.echo(f"no single outbox item matches {item_id!r}", err=True)
            raise typer.Exit(1)
        if not await inspect.retry(db, row.id, SystemClock().now(), settings.delivery.retry_for_s):
            typer.echo(
                f"{row.id} is {row.state}; only failed, dead or unknown items can be retried", err=True
            )
            raise typer.Exit(1)
        if row.state == "unknown":
            typer.echo(f"{row.id} queued again (it may already have arrived: the user may see it twice)")
        else:
            typer.echo(f"{row.id} queued again")

    _run(config, work)


@outbox_app.command("cancel")
def cancel_command(item_id: str, config: ConfigOption = None) -> None:
    """End a pending item without sending it (it shows as dead, "cancelled by the operator").

    An item being sent at this moment cannot be cancelled; try again once its attempt ends."""

    async def work(db: Database, _settings: HeraldConfig) -> None:
        row = await inspect.find_item(db, item_id)
        if row is None:
            typer.echo(f"no single outbox item matches {item_id!r}", err=True)
            raise typer.Exit(1)
        if not await inspect.cancel(db, row.id, SystemClock().now()):
            if row.state == "pending":
                why = "it is being sent right now; try again in a few seconds"
            else:
                why = f"it is {row.state}; only pending items can be cancelled"
            typer.echo(f"{row.id} not cancelled: {why}", err=True)
            raise typer.Exit(1)
        typer.echo(f"{row.id} cancelled (not sent)")

    _run(config, work)
