"""The production example (`examples/deploy/`, docs/deploy.md) as shipped: the compose file's files
are in the repository (a fresh clone has them), and its two Herald instances, started as the
image starts them (`herald run --config <the mounted herald.toml>`, the compose file's HERALD_*
variables), share one PostgreSQL, each on its own gateway shard, and answer users on both.

No Docker engine runs here, so the image itself is not built; what a test must change to reach
this machine's services is the only difference: the database URL (the compose file names its
PostgreSQL service's host), the platform's base URL (the emulator) and the model's (a fake
OpenAI-compatible server)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from sqlalchemy import select

from herald.sim.app import RunningSim
from herald.store import Database
from herald.store.tables.outbox import OutboxItem
from tests.app.herald_harness import WAIT_S
from tests.app.test_run_process import HeraldRun, finished_texts, herald_process
from tests.llm.fake_providers import fake_server
from tests.sim_control import running_sim

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "examples" / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
# `${NAME:?message}` and `${NAME}`: a value the operator must give when starting the compose file.
REQUIRED = re.compile(r"^\$\{(\w+)(?::\?[^}]*)?\}$")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def herald_services() -> dict[str, dict[str, Any]]:
    """The services built from this repository: the Herald instances."""
    return {name: service for name, service in compose()["services"].items() if "build" in service}


def dockerfile_command() -> list[str]:
    """The image's `ENTRYPOINT` followed by its `CMD` (both in exec form)."""
    parts: dict[str, list[str]] = {}
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        word, _, rest = line.partition(" ")
        if word in ("ENTRYPOINT", "CMD"):
            parts[word] = yaml.safe_load(rest)
    return parts["ENTRYPOINT"] + parts["CMD"]


def ignored_by_git(path: Path) -> bool:
    """Whether `git` leaves `path` out of commits (then a fresh clone lacks it)."""
    result = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT, check=False)
    assert result.returncode in (0, 1), f"git check-ignore failed for {path}"
    return result.returncode == 0


def mounted_config(service: dict[str, Any]) -> Path:
    """The file the service mounts where the image reads its config."""
    command = dockerfile_command()
    config_in_image = command[command.index("--config") + 1]
    mounts: list[list[str]] = [volume.split(":") for volume in service.get("volumes", [])]
    sources = [source for source, target, *_ in mounts if target == config_in_image]
    assert sources, f"nothing is mounted at {config_in_image}, where the image reads its config"
    return (DEPLOY / sources[0]).resolve()


def test_the_compose_file_mounts_and_builds_what_a_clone_has() -> None:
    assert dockerfile_command()[:2] == ["herald", "run"], dockerfile_command()
    services = herald_services()
    assert len(services) >= 2, "the example runs several Herald instances"
    for name, service in services.items():
        assert (DEPLOY / service["build"]["context"]).resolve() == ROOT, name
        assert mounted_config(service).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            path = (DEPLOY / source).resolve()
            assert path.is_file(), f"{name} mounts {source}, which the repository lacks"
            if (ROOT / ".git").exists():
                assert not ignored_by_git(path), f"{source} is ignored by git: a fresh clone lacks it"
    names = [service["environment"]["HERALD_DELIVERY__INSTANCE"] for service in services.values()]
    assert len(set(names)) == len(names), f"two instances share a name: {names}"


def instance_env(service: dict[str, Any], sim: RunningSim, db_url: str, model_base: str) -> dict[str, str]:
    """The service's HERALD_* variables as the compose file sets them, the operator's required
    values given, and the three URLs of this machine's services in place of the deployment's."""
    settings = sim.state.settings
    given = {
        "HERALD_QQ__APP_ID": settings.app_id,
        "HERALD_QQ__SECRET": settings.secret,
        "HERALD_LLM__API_KEY": "sk-test",
    }
    env = {key: value for key, value in os.environ.items() if not key.startswith("HERALD_")}
    for key, value in service["environment"].items():
        match = REQUIRED.match(str(value))
        env[key] = given[match.group(1)] if match else str(value)
    assert env["HERALD_STORAGE__URL"].startswith("postgresql+asyncpg://"), env["HERALD_STORAGE__URL"]
    env |= {
        "HERALD_STORAGE__URL": db_url,
        "HERALD_QQ__API_BASE": sim.base_url,
        "HERALD_QQ__TOKEN_URL": sim.token_url,
        "HERALD_LLM__BASE_URL": f"{model_base}/v1",
    }
    return env


@contextlib.asynccontextmanager
async def instance(
    name: str, service: dict[str, Any], env: dict[str, str], logs: Path
) -> AsyncIterator[HeraldRun]:
    """`herald run` as the image runs it, with the file the service mounts as its config."""
    command = dockerfile_command()
    command[command.index("--config") + 1] = str(mounted_config(service))
    async with herald_process(command[1:], logs / f"{name}.log", env) as run:
        yield run
    assert run.code == 0, f"{shlex.join(command)} exited {run.code}: see {run.log}"


async def until_logged(run: HeraldRun, line: str) -> None:
    try:
        async with asyncio.timeout(WAIT_S):
            while line not in run.output():  # noqa: ASYNC110 (another process)
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"{run.log.name} did not log {line!r} in {WAIT_S} s:\n{run.output()[-3000:]}")


async def delivered_by(db_url: str) -> dict[str, set[str | None]]:
    """Per channel id: the instances that sent its replies (kept on each finished outbox item)."""
    database = Database(db_url)
    try:
        async with database.session() as session:
            rows = (await session.execute(select(OutboxItem.conversation, OutboxItem.claimed_by))).all()
    finally:
        await database.dispose()
    senders: dict[str, set[str | None]] = {}
    for conversation, claimed_by in rows:
        senders.setdefault(conversation.rpartition(":")[2], set()).add(claimed_by)
    return senders


async def answers(http: aiohttp.ClientSession, sim: RunningSim, scene: str, target: str) -> list[str]:
    """The bot's two messages in one conversation, once both reached the user."""
    texts: list[str] = []
    try:
        async with asyncio.timeout(WAIT_S):
            while len(texts) < 2:
                await asyncio.sleep(0.1)
                texts = await finished_texts(http, sim, scene, target)
    except TimeoutError:
        pytest.fail(f"{scene} {target}: the bot sent {texts} in {WAIT_S} s, not its two messages")
    return texts


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_the_compose_instances_share_postgresql_and_answer_on_their_shards(
    db_url: str, tmp_path: Path
) -> None:
    services = herald_services()
    async with running_sim() as sim, fake_server() as model_base, aiohttp.ClientSession() as http:
        async with contextlib.AsyncExitStack() as stack:
            runs: dict[tuple[str, tuple[int, int]], HeraldRun] = {}
            for name, service in services.items():
                env = instance_env(service, sim, db_url, model_base)
                index, count = json.loads(env["HERALD_QQ__SHARD"])
                key = (env["HERALD_DELIVERY__INSTANCE"], (index, count))
                runs[key] = await stack.enter_async_context(instance(name, service, env, tmp_path))
            for run in runs.values():
                await until_logged(run, "qq gateway: READY")
            for (_, shard), run in runs.items():
                assert f"shard={list(shard)}" in run.output(), run.log

            # Private chats arrive on shard 0; a guild's channel on shard (guild_id >> 22) % n.
            async with http.post(f"{sim.base_url}/_sim/c2c/deploy-user/messages", json={"content": "hi"}):
                pass
            channels = {shard: f"deploy-chan-{shard[0]}" for _, shard in runs}
            for (index, _), channel in channels.items():
                body = {"guild_id": str(index << 22), "author_id": "deploy-author", "content": "hi"}
                async with http.post(f"{sim.base_url}/_sim/channels/{channel}/messages", json=body):
                    pass

            # The fake model calls send_message_to_user, then answers: two messages per user.
            assert await answers(http, sim, "c2c", "deploy-user") == ["via openai", "done via openai"]
            for channel in channels.values():
                assert await answers(http, sim, "channel", channel) == ["via openai", "done via openai"]
            # Each channel's replies were sent by the instance on its guild's shard.
            senders = await delivered_by(db_url)
            for instance_name, shard in runs:
                assert senders[channels[shard]] == {instance_name}, senders
    for run in runs.values():
        assert "Traceback" not in run.output(), run.log
