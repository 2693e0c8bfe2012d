"""What `herald run` loads before it is up: a gateway-only start on SQLite imports no web server,
no PostgreSQL dialect, no webhook crypto, no migration tool, no syntax highlighter (httpx's
command-line tool would load one) and no terminal tables (only other commands print them); each
costs start time and memory (bench/footprint.py measures both)."""

from __future__ import annotations

import json
import subprocess
import sys

NOT_AT_START = (
    "uvicorn",
    "starlette",
    "cryptography",
    "sqlalchemy.dialects.postgresql",
    "jinja2",
    "mcp",
    "alembic",
    "pygments",
    "rich",
)


def test_the_run_path_imports_nothing_it_does_not_use() -> None:
    # A fresh interpreter: this one has imported everything the other tests use.
    script = (
        "import json, sys\n"
        "import herald.cli\n"
        "herald.cli.register_commands()\n"
        "import herald.app\n"
        "from herald.store import Database\n"
        "Database('sqlite+aiosqlite:///:memory:')\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = set(
        json.loads(
            subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
        )
    )
    assert "herald.app" in loaded
    assert sorted(name for name in NOT_AT_START if name in loaded) == []
