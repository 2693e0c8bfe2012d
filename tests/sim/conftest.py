"""Fixtures for emulator tests: a real sim on a loopback port and an aiohttp client that speaks to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from herald.sim.app import RunningSim
from tests.sim_control import running_sim


@dataclass
class Answer:
    status: int
    body: Any
    headers: CIMultiDict[str]

    @property
    def code(self) -> int | None:
        return self.body.get("code") if isinstance(self.body, dict) else None

    def error(self, code: int, status: int = 400, err_code: int | None = None) -> None:
        """Assert the platform's error shape: status, `code`, `err_code` (= `code` unless given),
        trace id, exact content type."""
        assert (self.status, self.code) == (status, code), self.body
        assert self.body["err_code"] == (code if err_code is None else err_code)
        assert isinstance(self.body["trace_id"], str) and self.body["trace_id"]
        assert self.headers["Content-Type"] == "application/json"
        assert self.headers["X-Tps-trace-ID"] == self.body["trace_id"]

    def ok(self) -> Any:
        assert self.status == 200, (self.status, self.body)
        return self.body


class SimClient:
    """What a bot (OpenAPI with a token) and a test (the `/_sim/` control API) do against the sim."""

    def __init__(self, sim: RunningSim, session: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.session = session
        self.token: str | None = None

    async def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        auth: bool = True,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        managed = auth and not path.startswith("/_sim/") and "Authorization" not in (headers or {})
        answer = await self._request(method, path, json, managed, headers)
        if managed and answer.status == 401 and answer.code == 11244:
            # As a well-behaved client does: the clock moved past the token's expiry, refresh once.
            self.token = None
            answer = await self._request(method, path, json, managed, headers)
        return answer

    async def _request(
        self, method: str, path: str, json: Any, managed: bool, headers: dict[str, str] | None
    ) -> Answer:
        all_headers = dict(headers or {})
        if managed:
            if self.token is None:
                self.token = await self.fetch_token()
            all_headers["Authorization"] = f"QQBot {self.token}"
        async with self.session.request(
            method, self.sim.base_url + path, json=json, headers=all_headers
        ) as response:
            raw = await response.read()
            body: Any = None
            if raw:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = raw.decode()
            return Answer(response.status, body, CIMultiDict(response.headers))

    async def fetch_token(self) -> str:
        s = self.sim.state.settings
        answer = await self.request(
            "POST", "/app/getAppAccessToken", {"appId": s.app_id, "clientSecret": s.secret}, auth=False
        )
        token: str = answer.body["access_token"]
        return token

    async def post(self, path: str, json: Any = None, **kw: Any) -> Answer:
        return await self.request("POST", path, json, **kw)

    async def get(self, path: str, **kw: Any) -> Answer:
        return await self.request("GET", path, **kw)

    # ---- control API shortcuts --------------------------------------------------------------------

    async def user_says(self, openid: str, content: str = "hi") -> dict[str, str]:
        answer = await self.post(f"/_sim/c2c/{openid}/messages", {"content": content})
        assert answer.status == 200, answer.body
        result: dict[str, str] = answer.body
        return result

    async def member_says(
        self, group: str, member: str = "m1", content: str = "hi", at_bot: bool = True
    ) -> dict[str, str]:
        answer = await self.post(
            f"/_sim/groups/{group}/messages", {"member_openid": member, "content": content, "at_bot": at_bot}
        )
        assert answer.status == 200, answer.body
        result: dict[str, str] = answer.body
        return result

    async def event(self, t: str, d: dict[str, Any]) -> str:
        answer = await self.post("/_sim/events", {"t": t, "d": d})
        assert answer.status == 200, answer.body
        event_id: str = answer.body["event_id"]
        return event_id

    async def advance(self, seconds: float) -> None:
        answer = await self.post("/_sim/clock/advance", {"seconds": seconds})
        assert answer.status == 200, answer.body

    async def settings(self, **values: Any) -> None:
        answer = await self.request("PUT", "/_sim/settings", values)
        assert answer.status == 200, answer.body

    async def send_c2c(self, openid: str, **body: Any) -> Answer:
        return await self.post(f"/v2/users/{openid}/messages", {"msg_type": 0, "content": "reply", **body})

    async def send_group(self, group: str, **body: Any) -> Answer:
        return await self.post(f"/v2/groups/{group}/messages", {"msg_type": 0, "content": "reply", **body})


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    async with running_sim() as running:
        yield running


@pytest.fixture
async def client(sim: RunningSim) -> AsyncIterator[SimClient]:
    async with aiohttp.ClientSession() as session:
        yield SimClient(sim, session)
