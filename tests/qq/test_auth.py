"""The token manager against the sim's token endpoint."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import pytest

from herald.core import ErrorKind, VirtualClock
from herald.qq.auth import AuthError, TokenManager
from herald.sim.app import RunningSim
from tests.sim_control import SimControl


def manager(sim: RunningSim, http: aiohttp.ClientSession, **kw: Any) -> TokenManager:
    s = sim.state.settings
    values: dict[str, Any] = {"app_id": s.app_id, "secret": s.secret, **kw}
    return TokenManager(
        http, values.pop("app_id"), values.pop("secret"), sim.token_url, values.pop("clock", None)
    )


async def test_token_is_cached(sim: RunningSim, http: aiohttp.ClientSession) -> None:
    tokens = manager(sim, http)
    first = await tokens.get()
    assert await tokens.get() == first
    assert tokens.fetches == 1
    assert 7000 < tokens.expires_in <= 7200  # the sim sends expires_in as a string


async def test_refreshes_within_the_last_60_seconds(
    sim: RunningSim, http: aiohttp.ClientSession, control: SimControl
) -> None:
    clock = VirtualClock()
    tokens = manager(sim, http, clock=clock)
    first = await tokens.get()
    await clock.advance(7200 - 61)
    assert await tokens.get() == first and tokens.fetches == 1
    await clock.advance(2)  # now inside the refresh margin
    await control.advance(7200 - 59)  # and so is the platform: it issues a new token
    second = await tokens.get()
    assert tokens.fetches == 2 and second != first


async def test_one_refresh_in_flight(sim: RunningSim, http: aiohttp.ClientSession) -> None:
    tokens = manager(sim, http)
    got = await asyncio.gather(*(tokens.get() for _ in range(25)))
    assert len(set(got)) == 1 and tokens.fetches == 1


async def test_invalidate_fetches_again_only_for_the_current_token(
    sim: RunningSim, http: aiohttp.ClientSession
) -> None:
    tokens = manager(sim, http)
    token = await tokens.get()
    tokens.invalidate("some-older-token")
    await tokens.get()
    assert tokens.fetches == 1
    tokens.invalidate(token)
    await tokens.get()
    assert tokens.fetches == 2


async def test_wrong_secret_is_explained_and_never_leaks(
    sim: RunningSim, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = manager(sim, http, secret="hunter2-not-the-secret")
    with pytest.raises(AuthError) as info:
        await tokens.get()
    error = info.value
    assert (error.code, error.status, error.kind) == (100016, 200, ErrorKind.PERMANENT)
    assert "secret" in error.message and "[qq] secret" in error.message
    for text in (str(error), repr(tokens), caplog.text):
        assert "hunter2" not in text


async def test_unknown_app_id(sim: RunningSim, http: aiohttp.ClientSession) -> None:
    with pytest.raises(AuthError) as info:
        await manager(sim, http, app_id="42").get()
    assert info.value.code == 100007 and "app_id" in info.value.message


async def test_unreachable_token_endpoint(http: aiohttp.ClientSession) -> None:
    tokens = TokenManager(http, "1", "s", "http://127.0.0.1:9/app/getAppAccessToken")
    with pytest.raises(AuthError) as info:
        await tokens.get()
    assert (info.value.status, info.value.kind) == (0, ErrorKind.RETRY_LATER)
