"""`herald sim`: run the QQ Open Platform emulator on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import typer
from rich.console import Console
from rich.table import Table

from herald.cli import app
from herald.sim.settings import ProactiveMode, SimSettings


def describe(settings: SimSettings, state_file: Path | None = None) -> Table:
    base = f"http://{settings.host}:{settings.port}"
    table = Table(title="Herald sim: a QQ Open Platform on loopback", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("API base URL", base)
    table.add_row("Token URL", f"{base}/app/getAppAccessToken")
    table.add_row("Gateway URL", f"ws://{settings.host}:{settings.port}/websocket/")
    table.add_row("App ID", settings.app_id)
    table.add_row("Secret", settings.secret)
    table.add_row("Mode", settings.mode)
    table.add_row("Webhook URL", settings.webhook_url or "(off: events go over the gateway)")
    table.add_row("Page", f"{base}/")
    table.add_row("Control API", f"{base}/_sim/")
    table.add_row("State", str(state_file) if state_file else "(in memory: forgotten on exit)")
    return table


@app.command("sim")
def sim(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8090,
    app_id: Annotated[str | None, typer.Option("--app-id", help="The bot's appId.")] = None,
    secret: Annotated[str | None, typer.Option(help="The bot's clientSecret.")] = None,
    mode: Annotated[str, typer.Option(help="Platform era for proactive sends: 2026, 2025 or 2023.")] = "2026",
    webhook_url: Annotated[
        str | None, typer.Option("--webhook-url", help="Push events to this URL instead of only the gateway.")
    ] = None,
    state_file: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="Keep the traffic (anchors, msg_seq, reply counts, quotas, transcripts) in this file "
            "across restarts.",
        ),
    ] = None,
) -> None:
    """Run the emulator: token endpoint, OpenAPI, WebSocket gateway, webhook push and a web page."""
    import uvicorn

    from herald.sim.app import create_app
    from herald.sim.persist import StateFileError

    if mode not in ("2026", "2025", "2023"):
        raise typer.BadParameter("must be 2026, 2025 or 2023", param_hint="--mode")
    era = cast(ProactiveMode, mode)
    fields: dict[str, object] = {"host": host, "port": port, "mode": era, "webhook_url": webhook_url}
    if app_id is not None:
        fields["app_id"] = app_id
    if secret is not None:
        fields["secret"] = secret
    settings = SimSettings.model_validate(fields)
    Console().print(describe(settings, state_file))
    try:
        application = create_app(settings, state_file=state_file)
    except StateFileError as exc:
        typer.echo(f"✗ {exc}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run(application, host=host, port=port, log_level="warning", ws_ping_interval=None)
