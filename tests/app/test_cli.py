"""The operator's commands: `herald run` refuses a config without [qq]; `herald jobs
list|pause|resume|run|cancel`; `herald console audit`."""

from __future__ import annotations

import asyncio
import os
import socket
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


def test_run_without_a_platform_is_a_clear_error(cli: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "herald.toml"
    config.write_text('[agent]\ntimezone = "UTC"\n', encoding="utf-8")
    result = cli.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert "no platform" in result.output and "[qq]" in result.output and "[onebot]" in result.output


def test_run_with_an_unknown_key_names_it(cli: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "herald.toml"
    config.write_text('[qq]\napp_id = "1"\nsecret = "x"\nintens = 1\n', encoding="utf-8")
    result = cli.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert "qq.intens: unknown key" in result.output


def test_the_demo_on_a_port_in_use_says_so_and_how_to_choose_another(cli: CliRunner, tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        storage = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
        result = cli.invoke(app, ["demo", "--port", str(port), "--storage", storage])
    assert result.exit_code == 2, result.output
    assert f"cannot listen on 127.0.0.1:{port}" in result.output and "--port 0" in result.output
    assert "Traceback" not in result.output


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


def test_jobs_pause_resume_and_run(cli: CliRunner, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'herald.db'}"
    config = tmp_path / "herald.toml"
    config.write_text(f'[storage]\nurl = "{url}"\n', encoding="utf-8")

    async def make() -> str:
        db = Database(url)
        await db.migrate()
        try:
            job = await JobStore(db, SystemClock()).create(
                conversation="c2c:u1",
                creator_id=None,
                name="digest",
                schedule=cron_schedule("0 8 * * *", "UTC"),
            )
        finally:
            await db.dispose()
        return job.id

    job_id = asyncio.run(make())

    def jobs(*args: str) -> tuple[int, str]:
        result = cli.invoke(app, ["jobs", *args, "--config", str(config)], env={"COLUMNS": "200"})
        return result.exit_code, result.output

    paused = jobs("pause", job_id, "--reason", "holiday")
    listed = jobs("list")
    paused_again = jobs("pause", job_id)
    refused_run = jobs("run", job_id)
    resumed = jobs("resume", job_id)
    ran = jobs("run", job_id)
    unknown = jobs("resume", "nope")

    assert paused == (0, f"paused {job_id} (digest) in c2c:u1: paused (holiday)\n")
    assert "paused (holiday)" in listed[1]
    assert paused_again[0] != 0 and "already paused (holiday)" in paused_again[1]
    assert refused_run[0] != 0 and "resume it first" in refused_run[1]
    assert resumed[0] == 0 and f"resumed {job_id} (digest); next run" in resumed[1]
    assert ran[0] == 0 and "runs now" in ran[1]
    assert unknown[0] != 0 and "no job 'nope'" in unknown[1]


def test_jobs_and_outbox_find_the_demos_database_without_config(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`herald demo` stores ./data/demo.db; run in its directory, the read commands find it."""
    import herald.cli.outbox  # noqa: F401  (registers the command group)

    for key in [key for key in os.environ if key.startswith("HERALD_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)

    nothing = cli.invoke(app, ["jobs", "list"])
    assert nothing.exit_code == 1
    assert "no database at data/herald.db" in nothing.output and "data/demo.db" in nothing.output
    assert not (tmp_path / "data").exists()  # no empty database was created by looking

    (tmp_path / "data").mkdir()
    url = "sqlite+aiosqlite:///./data/demo.db"

    async def make() -> str:
        db = Database(url)
        await db.migrate()
        try:
            job = await JobStore(db, SystemClock()).create(
                conversation="c2c:u1",
                creator_id="u1",
                name="心跳",
                schedule=cron_schedule("* * * * *", "UTC"),
            )
        finally:
            await db.dispose()
        return job.id

    job_id = asyncio.run(make())
    listing = cli.invoke(app, ["jobs", "list"], env={"COLUMNS": "200"})
    assert listing.exit_code == 0, listing.output
    assert job_id in listing.output
    assert "using the demo's database data/demo.db" in listing.output
    outbox = cli.invoke(app, ["outbox", "list"], env={"COLUMNS": "200"})
    assert outbox.exit_code == 0, outbox.output
    assert "using the demo's database" in outbox.output
    assert not (tmp_path / "data" / "herald.db").exists()


def test_a_configured_database_that_does_not_exist_is_named(cli: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "herald.toml"
    config.write_text(f'[storage]\nurl = "sqlite+aiosqlite:///{tmp_path / "gone.db"}"\n', encoding="utf-8")
    result = cli.invoke(app, ["jobs", "list", "--config", str(config)])
    assert result.exit_code == 1
    assert f"no database at {tmp_path / 'gone.db'} (set by your config)" in result.output


def test_the_demo_keeps_the_emulator_state_next_to_its_database(tmp_path: Path) -> None:
    from herald.cli.run import demo_sim_state
    from herald.config import HeraldConfig, StorageConfig

    default = HeraldConfig(storage=StorageConfig(url="sqlite+aiosqlite:///./data/demo.db"))
    assert demo_sim_state(default) == Path("data/demo-sim.json")
    elsewhere = HeraldConfig(storage=StorageConfig(url=f"sqlite+aiosqlite:///{tmp_path}/x/h.db"))
    assert demo_sim_state(elsewhere) == tmp_path / "x" / "demo-sim.json"
    postgres = HeraldConfig(storage=StorageConfig(url="postgresql+asyncpg://u@127.0.0.1/test"))
    assert demo_sim_state(postgres) == Path("data/demo-sim.json")


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_console_audit_prints_the_changes_newest_first(cli: CliRunner, db_url: str, tmp_path: Path) -> None:
    import herald.cli.console  # noqa: F401  (registers the command)
    from herald.agent.settings import KEYS, SYSTEM_PROMPT, AgentSettings
    from herald.config import AgentConfig
    from herald.store.settings import SettingsStore

    config = tmp_path / "herald.toml"
    config.write_text(f'[storage]\nurl = "{db_url}"\n[agent]\ntimezone = "UTC"\n', encoding="utf-8")

    async def change(edit: bool) -> None:
        db = Database(db_url)
        await db.migrate()
        try:
            agent = AgentSettings(AgentConfig(), SettingsStore(db, SystemClock(), KEYS))
            if edit:
                await agent.set_system_prompt("You are a pirate. " * 10, "console 10.1.2.3")
                await agent.reset(SYSTEM_PROMPT, "api-token")
        finally:
            await db.dispose()

    asyncio.run(change(edit=False))
    empty = cli.invoke(app, ["console", "audit", "--config", str(config)])
    asyncio.run(change(edit=True))
    result = cli.invoke(app, ["console", "audit", "--config", str(config)])
    assert empty.exit_code == 0 and "no settings changed yet" in empty.output
    assert result.exit_code == 0, result.output
    newest, oldest = result.output.splitlines()
    assert "api-token  agent.system_prompt: You are a pirate." in newest
    assert newest.endswith("… → (configured value)")
    assert "console 10.1.2.3  agent.system_prompt: (configured value) → You are a pirate." in oldest


def test_help_shows_the_config_tables_it_names(cli: CliRunner) -> None:
    # Typer renders help as rich markup, where an unescaped `[console]` is a style tag and vanishes.
    import herald.cli.console
    import herald.cli.policy  # noqa: F401  (registers the commands)

    console_help = cli.invoke(app, ["console", "--help"], terminal_width=200)
    policy_help = cli.invoke(app, ["policy", "show", "--help"], terminal_width=200)
    assert "The operator's console ([console] in the config)." in console_help.output
    assert "(for [policy.users.*])" in policy_help.output
    assert "(for [policy.guilds.*])" in policy_help.output
