"""The operator's commands: `herald run` refuses a config without [qq]; `herald jobs list|cancel`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from herald.cli import app
from herald.core.clock import SystemClock
from herald.scheduler import JobStore, cron_schedule
from herald.store import Database


@pytest.fixture
def cli() -> CliRunner:
    import herald.cli.jobs
    import herald.cli.run  # noqa: F401  (registers the commands)

    return CliRunner()


def test_run_without_qq_is_a_clear_error(cli: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "herald.toml"
    config.write_text('[agent]\ntimezone = "UTC"\n', encoding="utf-8")
    result = cli.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert "no [qq] section" in result.output


def test_run_with_an_unknown_key_names_it(cli: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "herald.toml"
    config.write_text('[qq]\napp_id = "1"\nsecret = "x"\nintens = 1\n', encoding="utf-8")
    result = cli.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert "qq.intens: unknown key" in result.output


def test_jobs_list_and_cancel(cli: CliRunner, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'herald.db'}"
    config = tmp_path / "herald.toml"
    config.write_text(f'[storage]\nurl = "{url}"\n', encoding="utf-8")

    async def make() -> str:
        db = Database(url)
        await db.migrate()
        try:
            job = await JobStore(db, SystemClock()).create(
                conversation="c2c:u1",
                creator_id="u1",
                name="heartbeat",
                schedule=cron_schedule("* * * * *", "UTC"),
            )
        finally:
            await db.dispose()
        return job.id

    job_id = asyncio.run(make())
    listing = cli.invoke(app, ["jobs", "list", "--config", str(config)], env={"COLUMNS": "200"})
    assert listing.exit_code == 0, listing.output
    assert job_id in listing.output and "heartbeat" in listing.output

    cancelled = cli.invoke(app, ["jobs", "cancel", job_id, "--config", str(config)])
    assert cancelled.exit_code == 0, cancelled.output
    assert f"cancelled {job_id}" in cancelled.output
    assert job_id not in cli.invoke(app, ["jobs", "list", "--config", str(config)]).output
    again = cli.invoke(app, ["jobs", "cancel", job_id, "--config", str(config)])
    assert again.exit_code != 0
