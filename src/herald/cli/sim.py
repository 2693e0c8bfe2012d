"""`herald sim`: run the QQ Open Platform emulator on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from herald.cli import app
from herald.sim.settings import ProactiveMode, SimSettings

if TYPE_CHECKING:
    from rich.table import Table


def describe(settings: SimSettings, state_file: Path | None = None) -> Table:
    from rich.table import Table

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
    from rich.console import Console

    Console().print(describe(settings, state_file))
    try:
        application = create_app(settings, state_file=state_file)
    except StateFileError as exc:
        typer.echo(f"✗ {exc}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run(application, host=host, port=port, log_level="warning", ws_ping_interval=None)


@app.command("sim-onebot")
def sim_onebot(
    connect: Annotated[
        str,
        typer.Option(help="The bot's reverse-WebSocket URL (universal role) to connect to; '' for none."),
    ] = "ws://127.0.0.1:8081/onebot/v11/ws",
    host: Annotated[str, typer.Option(help="Interface the control API listens on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port of the control API, the forward WebSocket (/) and the HTTP API.")
    ] = 8091,
    post_url: Annotated[
        str, typer.Option("--post-url", help="HTTP POST: the bot's URL to POST every event to.")
    ] = "",
    secret: Annotated[
        str, typer.Option(help="HTTP POST: sign each POST (X-Signature: sha1=HMAC of the body).")
    ] = "",
    heartbeat: Annotated[
        float, typer.Option(help="Seconds between heartbeat meta events; 0 for none.", min=0)
    ] = 0.0,
    access_token: Annotated[
        str,
        typer.Option(
            "--access-token",
            help="Sent as Authorization: Bearer; asked of forward-WebSocket and HTTP API clients.",
        ),
    ] = "sim-token",
    self_id: Annotated[int, typer.Option("--self-id", help="The emulated account's QQ number.")] = 10001,
    message_format: Annotated[
        str, typer.Option("--message-format", help="Events' `message` as `array` segments or a CQ `string`.")
    ] = "array",
) -> None:
    """Run the OneBot v11 emulator: an implementation (as NapCat plays) that connects to the bot's
    reverse WebSocket, serves a forward WebSocket and an HTTP API, and POSTs events with --post-url."""
    import asyncio

    from herald.sim.onebot import OneBotSimSettings, serve_onebot

    if message_format not in ("array", "string"):
        raise typer.BadParameter("must be array or string", param_hint="--message-format")
    settings = OneBotSimSettings.model_validate(
        {
            "host": host,
            "port": port,
            "reverse_ws_url": connect,
            "access_token": access_token,
            "self_id": self_id,
            "message_format": message_format,
            "post_url": post_url,
            "secret": secret,
            "heartbeat_interval_s": heartbeat,
        }
    )
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Herald sim: a OneBot v11 implementation on loopback", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Connects to", connect or "(no reverse WebSocket)")
    table.add_row("Forward WebSocket", f"ws://{host}:{port}/  (/api, /event)")
    table.add_row("HTTP API", f"http://{host}:{port}/<action>")
    table.add_row("Posts events to", post_url or "(no HTTP POST)")
    table.add_row("Account", str(self_id))
    table.add_row("Access token", access_token)
    table.add_row("Control API", f"http://{host}:{port}/_sim/onebot/")
    Console().print(table)

    async def serve() -> None:
        async with serve_onebot(settings):
            await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except OSError as exc:
        typer.echo(f"✗ cannot listen on {host}:{port}: {exc.strerror}; choose another --port", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        pass
