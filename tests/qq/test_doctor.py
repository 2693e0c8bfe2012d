"""`herald doctor` against `herald sim`: what it says for a good setup and for each common mistake."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import SecretStr

from herald.config import QQConfig
from herald.qq.doctor import Check, run_checks
from herald.qq.webhook import WebhookReceiver
from herald.sim.app import RunningSim
from tests.sim_control import SimControl, free_port, qq_toml

WAIT_S = 20.0


def qq_config(sim: RunningSim, **overrides: Any) -> QQConfig:
    s = sim.state.settings
    values: dict[str, Any] = {
        "app_id": s.app_id,
        "secret": SecretStr(s.secret),
        "api_base": sim.base_url,
        "token_url": sim.token_url,
        **overrides,
    }
    return QQConfig(**values)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


async def test_a_good_setup_passes_every_check(sim: RunningSim) -> None:
    checks = by_name(await run_checks(qq_config(sim)))
    assert [c.ok for c in checks.values()] == [True, True, True, True]
    assert "READY" in checks["gateway"].detail
    assert "GROUP_AND_C2C_EVENT" in checks["intents"].detail


async def test_wrong_secret_names_the_cause_and_the_fix(sim: RunningSim) -> None:
    checks = by_name(await run_checks(qq_config(sim, secret=SecretStr("wrong-secret-xyz"))))
    credentials = checks["credentials"]
    assert credentials.ok is False
    assert "100016" in credentials.detail and "secret" in credentials.fix
    assert "wrong-secret-xyz" not in credentials.render()
    assert checks["api"].ok is True  # reachable without a token
    assert checks["gateway"].ok is None


async def test_wrong_app_id(sim: RunningSim) -> None:
    checks = by_name(await run_checks(qq_config(sim, app_id="999")))
    credentials = checks["credentials"]
    assert credentials.ok is False
    assert "app_id" in credentials.fix
    assert "100007" in credentials.detail and "unknown" in credentials.fix


async def test_unreachable_api(sim: RunningSim) -> None:
    checks = by_name(
        await run_checks(qq_config(sim, api_base=f"http://127.0.0.1:{free_port()}"), timeout_s=3)
    )
    assert checks["credentials"].ok is True
    assert checks["api"].ok is False and "cannot reach" in checks["api"].detail
    assert "api_base" in checks["api"].fix
    assert checks["gateway"].ok is None


async def test_unreachable_token_endpoint(sim: RunningSim) -> None:
    url = f"http://127.0.0.1:{free_port()}/app/getAppAccessToken"
    checks = by_name(await run_checks(qq_config(sim, token_url=url), timeout_s=3))
    assert checks["credentials"].ok is False and "token_url" in checks["credentials"].fix


async def test_intent_not_permitted_is_named(sim: RunningSim, control: SimControl) -> None:
    await control.settings(intents_allowed=(1 << 25) | (1 << 26) | (1 << 12))
    checks = by_name(await run_checks(qq_config(sim)))
    intents = checks["intents"]
    assert intents.ok is False
    assert "PUBLIC_GUILD_MESSAGES" in intents.detail
    assert "GROUP_AND_C2C_EVENT" not in intents.detail and "INTERACTION" not in intents.detail
    assert f"intents = {(1 << 25) | (1 << 26) | (1 << 12)}" in intents.fix


@asynccontextmanager
async def receiver_on(port: int, app_id: str, secret: str) -> AsyncIterator[WebhookReceiver]:
    async def ignore(envelope: dict[str, Any]) -> None:
        return None

    receiver = WebhookReceiver(app_id, secret, ignore, path="/qq/webhook")
    server = uvicorn.Server(uvicorn.Config(receiver.app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(WAIT_S):
        while not server.started:  # noqa: ASYNC110 (uvicorn exposes only a flag)
            await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task


async def test_webhook_receiver_is_validated(sim: RunningSim) -> None:
    port = free_port()
    config = qq_config(sim, transport="webhook", webhook_port=port)
    missing = by_name(await run_checks(config, timeout_s=3))["webhook"]
    assert missing.ok is False and "nothing answers" in missing.detail
    async with receiver_on(port, config.app_id, config.secret.get_secret_value()) as receiver:
        good = by_name(await run_checks(config))["webhook"]
        assert good.ok is True and receiver.validations == 1
    async with receiver_on(port, config.app_id, "another-secret-entirely"):
        wrong = by_name(await run_checks(config))["webhook"]
        assert wrong.ok is False and "another secret" in wrong.fix


async def herald_doctor(config_file: Path, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from herald.cli import main; main()",
        "doctor",
        "--config",
        str(config_file),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(60):
        out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_cli_prints_checks_and_exits_nonzero_on_failure(sim: RunningSim, tmp_path: Path) -> None:
    s = sim.state.settings
    good = tmp_path / "good.toml"
    good.write_text(qq_toml(sim))
    code, out = await herald_doctor(good)
    assert code == 0, out
    assert "✓ credentials" in out and "✓ gateway" in out and "all checks passed" in out
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace(s.secret, "not-the-secret"))
    code, out = await herald_doctor(bad)
    assert code == 1, out
    assert "✗ credentials" in out and "fix:" in out and "not-the-secret" not in out
