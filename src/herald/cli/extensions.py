"""`herald mcp import|list` and `herald plugins`: what operators add, from the terminal."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from herald.cli import app
from herald.config import ConfigError, HeraldConfig, McpServerConfig, load_config
from herald.extensions import installed
from herald.plugin import Plugin
from herald.qq.doctor import Check

mcp_app = typer.Typer(help="MCP servers: import another host's config, list each server's tools.")
app.add_typer(mcp_app, name="mcp")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="Herald TOML config (HERALD_* variables also apply).")
]
_KNOWN = {"command", "args", "env", "cwd", "url", "headers"}


def _settings(config: Path | None) -> HeraldConfig:
    try:
        return load_config(config)
    except ConfigError as exc:
        typer.echo(f"✗ config: {exc}", err=True)
        raise typer.Exit(2) from None


def _toml_key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum()
    return key if bare else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    # JSON strings and arrays of strings are valid TOML basic strings and arrays.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        inner = ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    return json.dumps(value, ensure_ascii=False)


def mcp_servers_to_toml(document: Any) -> str:
    """The `[mcp.servers.*]` tables for a `{"mcpServers": {...}}` document; raises ValueError."""
    if not isinstance(document, dict) or not isinstance(document.get("mcpServers"), dict):
        raise ValueError(
            'expected a JSON object with an "mcpServers" object, as Claude Desktop and Cursor write'
        )
    tables: list[str] = []
    for name, entry in document["mcpServers"].items():
        if not isinstance(entry, dict):
            raise ValueError(f"mcpServers.{name}: expected an object")
        lines = [f"[mcp.servers.{_toml_key(name)}]"]
        for key in ("command", "args", "env", "cwd", "url", "headers"):
            if entry.get(key) not in (None, [], {}):
                lines.append(f"{key} = {_toml_value(entry[key])}")
        if entry.get("disabled") is True:
            lines.append("enabled = false")
        ignored = sorted(set(entry) - _KNOWN - {"disabled"})
        if ignored:
            lines.append(f"# not used by Herald: {', '.join(ignored)}")
        try:
            McpServerConfig.model_validate({k: entry[k] for k in _KNOWN if entry.get(k) is not None})
        except ValueError as exc:
            raise ValueError(f"mcpServers.{name}: {exc}") from None
        tables.append("\n".join(lines))
    return "\n\n".join(tables) + "\n"


@mcp_app.command("import")
def import_servers(
    file: Annotated[Path, typer.Argument(help='A JSON file in the {"mcpServers": {...}} form.')],
) -> None:
    """Print the TOML for Herald's config from another MCP host's JSON config."""
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
        typer.echo(mcp_servers_to_toml(document), nl=False)
    except OSError as exc:
        typer.echo(f"✗ cannot read {file}: {exc}", err=True)
        raise typer.Exit(2) from None
    except ValueError as exc:
        typer.echo(f"✗ {file}: {exc}", err=True)
        raise typer.Exit(2) from None


async def mcp_checks(settings: HeraldConfig) -> list[Check]:
    """Connect to every enabled server at once; each gives its tools or its error."""
    from herald.extensions.mcp import McpServer

    servers = [McpServer(name, s) for name, s in settings.mcp.servers.items() if s.enabled]
    for server in servers:
        server.start()
    try:
        up = await asyncio.gather(*(s.wait_connected(s.config.timeout_s) for s in servers))
        checks = []
        for server, connected in zip(servers, up, strict=True):
            name = f"MCP server {server.name}"
            if connected:
                tools = ", ".join(t.name for t in server.tools()) or "no tools"
                checks.append(Check(name, True, tools))
            else:
                checks.append(Check(name, False, server.error or "did not connect", _fix(server.config)))
        return checks
    finally:
        await asyncio.gather(*(s.stop() for s in servers))


def _fix(config: McpServerConfig) -> str:
    if config.command is not None:
        return f"run `{' '.join([config.command, *config.args])}` by hand to see why it fails"
    return f"check that {config.url} is up and speaks MCP (streamable HTTP)"


@mcp_app.command("list")
def list_servers(config: ConfigOption = None) -> None:
    """Connect to each configured MCP server and list its tools (or say why not)."""
    settings = _settings(config)
    if not settings.mcp.servers:
        typer.echo("no [mcp.servers.*] configured")
        return
    checks = asyncio.run(mcp_checks(settings))
    for check in checks:
        typer.echo(check.render())
    if any(check.ok is False for check in checks):
        raise typer.Exit(1)


def plugin_checks(settings: HeraldConfig) -> list[Check]:
    """One line per installed plugin: loaded (and what it adds), disabled, or why it failed."""
    checks = []
    for entry in installed(settings.plugins):
        name = f"plugin {entry.name}"
        if entry.error is not None:
            fix = f"install what it needs, or disable it: [plugins] disabled = [{entry.name!r}]"
            checks.append(Check(name, False, f"failed to load: {entry.error}", fix))
        elif entry.plugin is None:
            checks.append(Check(name, None, "disabled by [plugins]"))
        else:
            checks.append(Check(name, True, _adds(entry.plugin) or "adds nothing"))
    return checks


def _adds(plugin: Plugin) -> str:
    parts = [
        "tools: " + ", ".join(f"{plugin.name}_{t.name}" for t in plugin.tools) if plugin.tools else "",
        "commands: " + ", ".join(f"/{c.name}" for c in plugin.commands) if plugin.commands else "",
        f"{len(plugin.message_hooks)} message hooks" if plugin.message_hooks else "",
        f"{len(plugin.delivery_hooks)} delivery hooks" if plugin.delivery_hooks else "",
    ]
    return "; ".join(part for part in parts if part)


@app.command("plugins")
def plugins(config: ConfigOption = None) -> None:
    """List installed plugins: enabled or not, and what each adds (or why it failed to load)."""
    settings = _settings(config)
    found = installed(settings.plugins)
    if not found:
        typer.echo("no plugins installed (a plugin is a package with a `herald.plugins` entry point)")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("plugin", "package", "state", "adds")
    for entry in found:
        if entry.error is not None:
            state, adds = "[red]failed to load[/red]", entry.error
        elif entry.plugin is None:
            state, adds = "disabled", ""
        else:
            state, adds = "enabled", _adds(entry.plugin)
        table.add_row(entry.name, entry.package, state, adds)
    Console(width=200).print(table)
