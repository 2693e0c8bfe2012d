"""`herald sim`: the command prints where everything is and serves the emulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from typer.testing import CliRunner

from herald.cli import app
from herald.cli import sim as sim_cli  # registers the command
from tests.sim_control import free_port

WAIT = 20.0  # a ceiling for the server to come up, not a timing assertion


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())


def test_sim_is_a_subcommand_with_its_options() -> None:
    result = CliRunner().invoke(app, ["sim", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for option in ("--host", "--port", "--app-id", "--secret", "--mode", "--webhook-url", "--state"):
        assert option in result.output


def test_an_unknown_mode_is_refused() -> None:
    result = CliRunner().invoke(app, ["sim", "--mode", "1999"])
    assert result.exit_code != 0
    assert "2026, 2025 or 2023" in result.output


def test_sim_runs_the_emulator_and_prints_its_urls_and_credentials() -> None:
    port = free_port()
    command = [
        sys.executable,
        "-c",
        "from herald.cli import main; main()",
        "sim",
        "--port",
        str(port),
        "--app-id",
        "424242",
        "--secret",
        "cli-secret",
        "--mode",
        "2025",
        "--webhook-url",
        "http://127.0.0.1:9/qqbot",
    ]
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + WAIT
        settings: dict[str, Any] | None = None
        while settings is None:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                settings = get_json(f"{base}/_sim/settings")
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the emulator never answered"
                time.sleep(0.1)
        assert settings["app_id"] == "424242"
        assert settings["secret"] == "cli-secret"
        assert settings["mode"] == "2025"
        assert settings["webhook_url"] == "http://127.0.0.1:9/qqbot"
        with urllib.request.urlopen(f"{base}/", timeout=2) as response:
            assert b"Herald Sim" in response.read()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    for expected in (
        base,
        f"{base}/app/getAppAccessToken",
        f"ws://127.0.0.1:{port}/websocket/",
        "424242",
        "cli-secret",
        f"{base}/",
    ):
        assert expected in output, output


def test_the_banner_lists_every_url() -> None:
    from rich.console import Console

    from herald.sim.settings import SimSettings

    console = Console(width=200, record=True)
    console.print(sim_cli.describe(SimSettings(port=8123)))
    text = console.export_text()
    assert "http://127.0.0.1:8123/app/getAppAccessToken" in text
    assert "ws://127.0.0.1:8123/websocket/" in text
    assert "(off: events go over the gateway)" in text


@pytest.fixture(autouse=True)
def _no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
