"""The sim's `/_sim/` control API as tests drive it: inject what users do, fault, read what the bot did;
and `running_sim`, the emulator as tests start it."""

from __future__ import annotations

import contextlib
import math
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from herald.sim.app import RunningSim, serve
from herald.sim.clock import BEIJING
from herald.sim.settings import SimSettings

# Daily quotas reset at midnight in Beijing, monthly ones at the first midnight of the month. A test
# that starts at noon there is twelve hours from either, so it counts the same at whatever hour it runs.
QUIET_HOUR = 12


def qq_toml(sim: RunningSim) -> str:
    """The `[qq]` section of a `herald run` config pointed at this emulator."""
    s = sim.state.settings
    return (
        f'[qq]\napp_id = "{s.app_id}"\nsecret = "{s.secret}"\n'
        f'api_base = "{sim.base_url}"\ntoken_url = "{sim.token_url}"\n'
    )


def seconds_to_quiet_hour(now: float) -> float:
    """From `now` (seconds since the epoch) to the next noon in Beijing (0 at noon exactly), rounded
    up to whole seconds so that a test's own offsets add to the clock's offset exactly."""
    local = datetime.fromtimestamp(now, BEIJING)
    noon = local.replace(hour=QUIET_HOUR, minute=0, second=0, microsecond=0)
    if noon < local:
        noon += timedelta(days=1)
    return float(math.ceil((noon - local).total_seconds()))


@contextlib.asynccontextmanager
async def running_sim(settings: SimSettings | None = None, **values: Any) -> AsyncIterator[RunningSim]:
    """The emulator on a free loopback port (or as `settings` say), its virtual clock moved forward to
    the next noon in Beijing before any traffic: a test's quotas never depend on the time of day."""
    async with serve(settings or SimSettings(port=0, **values)) as sim:
        sim.state.clock.advance(seconds_to_quiet_hour(sim.state.clock.time()))
        yield sim


class SimControl:
    def __init__(self, sim: RunningSim, session: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.session = session

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, self.sim.base_url + path, json=body) as resp:
            data = await resp.json(content_type=None)
            assert resp.status == 200, (path, resp.status, data)
            return data

    # -- what users and the platform do ------------------------------------------------------
    async def c2c(self, openid: str, content: str) -> dict[str, str]:
        result: dict[str, str] = await self.call("POST", f"/_sim/c2c/{openid}/messages", {"content": content})
        return result

    async def group(self, gid: str, member: str, content: str, at_bot: bool = True) -> dict[str, str]:
        result: dict[str, str] = await self.call(
            "POST",
            f"/_sim/groups/{gid}/messages",
            {"member_openid": member, "content": content, "at_bot": at_bot},
        )
        return result

    async def channel(self, cid: str, guild: str, author: str, content: str) -> dict[str, str]:
        result: dict[str, str] = await self.call(
            "POST",
            f"/_sim/channels/{cid}/messages",
            {"guild_id": guild, "author_id": author, "content": content},
        )
        return result

    async def dm(self, guild: str, author: str, content: str) -> dict[str, str]:
        result: dict[str, str] = await self.call(
            "POST", f"/_sim/dms/{guild}/messages", {"author_id": author, "content": content}
        )
        return result

    async def event(self, t: str, d: dict[str, Any]) -> str:
        result = await self.call("POST", "/_sim/events", {"t": t, "d": d})
        return str(result["event_id"])

    # -- the emulator itself -------------------------------------------------------------------
    async def fault(self, **body: Any) -> Any:
        return await self.call("POST", "/_sim/faults", body)

    async def fail_next(self, count: int, status: int, code: int) -> None:
        await self.fault(kind="fail_next", count=count, status=status, code=code)

    async def advance(self, seconds: float) -> None:
        await self.call("POST", "/_sim/clock/advance", {"seconds": seconds})

    async def settings(self, **values: Any) -> None:
        await self.call("PUT", "/_sim/settings", values)

    # -- what the bot did ----------------------------------------------------------------------
    async def requests(self) -> list[dict[str, Any]]:
        result = await self.call("GET", "/_sim/requests")
        requests: list[dict[str, Any]] = result["requests"]
        return requests

    async def transcript(self, scene: str, target: str) -> list[dict[str, Any]]:
        data = await self.call("GET", f"/_sim/transcript?scene={scene}&target={target}")
        entries: list[dict[str, Any]] = data["entries"]
        return entries

    async def outbound(self, scene: str, target: str) -> list[dict[str, Any]]:
        """Every send the bot attempted in this conversation, accepted or refused, in order."""
        return [e for e in await self.transcript(scene, target) if e.get("direction") == "out"]

    async def delivered(self, scene: str, target: str) -> list[dict[str, Any]]:
        return [e for e in await self.outbound(scene, target) if e.get("status") == 200]


def free_port() -> int:
    """A loopback port free right now, for a server another process starts (a race in theory:
    nothing else on a test machine takes ports in that range between the two steps)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
