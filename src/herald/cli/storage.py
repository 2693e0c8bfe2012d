"""Which database the operator's read commands (`herald jobs`, `herald outbox`) open.

Without `--config` (and without `HERALD_STORAGE__URL`) the default is `./data/herald.db`; when that
file is absent but `herald demo` left `./data/demo.db` in this directory, that is the one meant.
A SQLite file that does not exist is an error naming it, never a new empty database.
"""

from __future__ import annotations

from pathlib import Path

import typer
from sqlalchemy.engine import make_url

from herald.config import HeraldConfig

DEMO_STORAGE = "sqlite+aiosqlite:///./data/demo.db"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def storage_url(settings: HeraldConfig) -> str:
    """The database URL to read, saying so when it is the demo's; exits when there is none."""
    url = settings.storage.url
    chosen = "storage" in settings.model_fields_set
    path = sqlite_file(url)
    if path is None or path.exists():
        return url
    demo = sqlite_file(DEMO_STORAGE)
    assert demo is not None
    if not chosen and demo.exists():
        typer.echo(
            f"using the demo's database {demo} ({path} does not exist; --config chooses another)", err=True
        )
        return DEMO_STORAGE
    where = "set by your config" if chosen else "the default"
    also = "" if chosen else f" nor the demo's {demo}"
    typer.echo(
        f"✗ no database at {path} ({where}){also} in {Path.cwd()}: run this where `herald run` or "
        "`herald demo` ran, or pass --config with the [storage] url Herald uses",
        err=True,
    )
    raise typer.Exit(1)
