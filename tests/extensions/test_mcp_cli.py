"""`herald mcp import` turns another MCP host's JSON into Herald's TOML; `herald mcp list`
connects to each configured server and lists its tools or says why not."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import herald.cli.extensions  # noqa: F401  (registers `herald mcp`)
from herald.cli import app
from herald.config import ConfigError, load_config
from tests.extensions.test_mcp import SERVER
from tests.sim_control import qq_toml

CLAUDE_DESKTOP = {
    "mcpServers": {
        "files": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp/x y"],
            "env": {"DEBUG": "1"},
        },
        "search-api": {
            "url": "http://127.0.0.1:9000/mcp",
            "headers": {"Authorization": "Bearer s3cret"},
            "type": "http",
        },
        "old": {"command": "old-server", "disabled": True},
    }
}


def test_import_prints_toml_that_loads_as_the_same_servers(tmp_path: Path) -> None:
    source = tmp_path / "claude_desktop_config.json"
    source.write_text(json.dumps(CLAUDE_DESKTOP))
    result = CliRunner().invoke(app, ["mcp", "import", str(source)])
    assert result.exit_code == 0, result.output
    assert "# not used by Herald: type" in result.output
    config_file = tmp_path / "herald.toml"
    config_file.write_text(result.output)
    servers = load_config(config_file).mcp.servers
    assert list(servers) == ["files", "search-api", "old"]
    assert servers["files"].command == "npx"
    assert servers["files"].args == ["-y", "@modelcontextprotocol/server-filesystem", "/tmp/x y"]
    assert servers["files"].env == {"DEBUG": "1"}
    assert servers["search-api"].url == "http://127.0.0.1:9000/mcp"
    assert servers["search-api"].headers["Authorization"].get_secret_value() == "Bearer s3cret"
    assert servers["old"].enabled is False and servers["files"].enabled is True


def test_import_refuses_a_file_of_another_shape_and_says_what_it_expected(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"servers": {}}))
    result = CliRunner().invoke(app, ["mcp", "import", str(wrong)])
    assert result.exit_code == 2
    assert '"mcpServers"' in result.output
    neither = tmp_path / "neither.json"
    neither.write_text(json.dumps({"mcpServers": {"x": {"args": ["a"]}}}))
    result = CliRunner().invoke(app, ["mcp", "import", str(neither)])
    assert result.exit_code == 2 and "mcpServers.x" in result.output and "exactly one of" in result.output


def test_list_shows_each_servers_tools_or_its_error(tmp_path: Path) -> None:
    import subprocess

    config_file = tmp_path / "herald.toml"
    config_file.write_text(
        f"[mcp.servers.lucky]\ncommand = {json.dumps(sys.executable)}\n"
        f'args = [{json.dumps(SERVER)}, "stdio"]\n'
        f'env = {{ NOTES_FILE = "{tmp_path / "n.txt"}" }}\n\n'
        '[mcp.servers.gone]\ncommand = "/nonexistent/server"\ntimeout_s = 3\n'
    )
    command = [
        sys.executable,
        "-c",
        "from herald.cli import main; main()",
        "mcp",
        "list",
        "-c",
        str(config_file),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    lucky = next(line for line in result.stdout.splitlines() if "MCP server lucky" in line)
    assert lucky.startswith("✓") and "lucky_lucky_number" in lucky and "lucky_append_note" in lucky
    assert "✗ MCP server gone" in result.stdout and "/nonexistent/server" in result.stdout


def test_a_server_table_that_mixes_transports_or_names_badly_is_refused_with_the_key(tmp_path: Path) -> None:
    cases = {
        '[mcp.servers.a]\ncommand = "x"\nheaders = { A = "b" }\n': "headers: only for a streamable-HTTP",
        '[mcp.servers.a]\nurl = "http://h/mcp"\nargs = ["x"]\n': "args: only for a stdio server",
        '[mcp.servers.a]\nurl = "ftp://h/mcp"\n': "use an http:// or https:// URL",
        "[mcp.servers.a]\n": "give exactly one of `command`",
        '[mcp.servers."天气"]\ncommand = "x"\n': "it prefixes the server's tool names",
    }
    for text, expected in cases.items():
        config_file = tmp_path / "herald.toml"
        config_file.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=r"mcp\.servers") as error:
            load_config(config_file)
        assert expected in str(error.value), (text, str(error.value))


async def test_doctor_lists_each_servers_tools_or_error_and_each_plugin(tmp_path: Path) -> None:
    import asyncio

    from herald.sim.app import serve
    from herald.sim.settings import SimSettings

    async with serve(SimSettings(port=0)) as sim:
        config_file = tmp_path / "herald.toml"
        config_file.write_text(
            f"{qq_toml(sim)}\n"
            '[llm]\nprovider = "openai"\nbase_url = "http://127.0.0.1:1/v1"\napi_key = "k"\n\n'
            f"[mcp.servers.lucky]\ncommand = {json.dumps(sys.executable)}\n"
            f'args = [{json.dumps(SERVER)}, "stdio"]\n\n'
            '[mcp.servers.gone]\ncommand = "/nonexistent/server"\ntimeout_s = 3\n',
            encoding="utf-8",
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from herald.cli import main; main()",
            "doctor", "--config", str(config_file),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out = (await asyncio.wait_for(process.communicate(), 120))[0].decode()
    assert process.returncode == 1, out
    lines = out.splitlines()
    assert any(line.startswith("✓ MCP server lucky: lucky_lucky_number, ") for line in lines), out
    gone = [line for line in lines if line.startswith("✗ MCP server gone: ")]
    assert gone and "/nonexistent/server" in gone[0], out
    assert any(line.startswith("✓ plugin dice: tools: dice_roll_dice, dice_pick_one") for line in lines), out
    assert "1 check(s) failed: MCP server gone" in out
