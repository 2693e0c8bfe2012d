"""The effective configuration the settings page shows: every key, where it came from, and no
secret (not a SecretStr, not an MCP server's environment, not a database URL's password)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from herald.config import load_config
from herald.console.settings import MASK, effective_config


def test_values_are_shown_with_their_source_and_secrets_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file = tmp_path / "herald.toml"
    config_file.write_text(
        """
[qq]
app_id = "1020"
secret = "file-secret-123"
[storage]
url = "postgresql+asyncpg://herald:db-password-456@db.internal/herald"
[llm]
provider = "openai"
base_url = "https://api.example.com/v1"
api_key = "sk-llm-key-789"
[mcp.servers.search]
command = "search-server"
env = { SEARCH_API_KEY = "search-key-000" }
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("HERALD_AGENT__TIMEZONE", "Europe/Berlin")
    config = load_config(config_file)
    sections = {s.name: {v.key: v for v in s.values} for s in effective_config(config, None, os.environ)}

    shown = repr(sections)
    for secret in ("file-secret-123", "db-password-456", "sk-llm-key-789", "search-key-000"):
        assert secret not in shown
    assert sections["qq"]["secret"].value == f'"{MASK}"'
    assert sections["qq"]["app_id"].value == '"1020"' and sections["qq"]["app_id"].source == "file"
    assert sections["storage"]["url"].value == f'"postgresql+asyncpg://herald:{MASK}@db.internal/herald"'
    assert sections["mcp.servers.search"]["env"].value == f'{{"SEARCH_API_KEY": "{MASK}"}}'
    assert sections["agent"]["timezone"].source == "env"
    assert sections["agent"]["max_steps"].source == "default"
    assert sections["console"]["api_token"].value == "(unset)"
