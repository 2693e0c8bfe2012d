"""Herald's delivery stack (Database + QQPlatform + Outbox) wired to a running `herald sim`.

Everything real: the sim over loopback sockets (token endpoint, REST, WebSocket gateway), SQLite or
PostgreSQL. Time is virtual on both sides; `advance()` moves Herald's `VirtualClock` and the sim's
clock together.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
from pydantic import SecretStr

from herald.config import DeliveryConfig, QQConfig, QQDeliveryConfig
from herald.core.clock import Clock, VirtualClock
from herald.core.events import InboundEvent, InboundMessage
from herald.delivery.outbox import Outbox
from herald.delivery.spool import MediaSpool
from herald.qq.adapter import QQPlatform
from herald.sim.app import RunningSim, serve
from herald.sim.settings import SimSettings
from herald.store.db import Database
from tests.sim_control import SimControl, running_sim

WAIT_S = 30.0  # a safety limit so a broken stack fails instead of hanging; never a timing assertion


def qq_config(sim: RunningSim, rules: QQDeliveryConfig | None = None) -> QQConfig:
    s = sim.state.settings
    return QQConfig(
        app_id=s.app_id,
        secret=SecretStr(s.secret),
        api_base=sim.base_url,
        token_url=sim.token_url,
        intents=(1 << 25) | (1 << 26) | (1 << 30) | (1 << 12),
        delivery=rules or QQDeliveryConfig(),
    )


class Stack:
    def __init__(
        self,
        sim: RunningSim,
        db: Database,
        config: DeliveryConfig,
        *,
        rules: QQDeliveryConfig | None = None,
        rate_limits: bool,
        clock: Clock | None,
        spool: MediaSpool | None = None,
    ) -> None:
        self.sim = sim
        self.db = db
        self.clock: Any = clock or VirtualClock(datetime.fromtimestamp(sim.state.clock.time(), UTC))
        self.platform = QQPlatform(qq_config(sim, rules), db, self.clock, rate_limits=rate_limits)
        self.outbox = Outbox(db, self.platform, self.clock, config=config, spool=spool)
        self.events: list[InboundEvent] = []
        self._arrived = asyncio.Condition()
        self.http = aiohttp.ClientSession()
        self.control = SimControl(sim, self.http)

    async def _sink(self, event: InboundEvent) -> None:
        async with self._arrived:
            self.events.append(event)
            self._arrived.notify_all()

    async def start(self, *, inbound: bool = True) -> None:
        if inbound:
            await self.platform.start(self._sink)
            async with asyncio.timeout(WAIT_S):
                await self.platform.wait_ready()
        else:
            await self.platform.connect()
        await self.outbox.start()

    async def stop(self) -> None:
        await self.outbox.stop()
        await self.platform.stop()
        await self.http.close()

    async def _wait_for(self, message_id: str) -> InboundMessage:
        def found() -> InboundMessage | None:
            for event in self.events:
                if isinstance(event, InboundMessage) and event.message_id == message_id:
                    return event
            return None

        async with asyncio.timeout(WAIT_S), self._arrived:
            await self._arrived.wait_for(lambda: found() is not None)
        event = found()
        assert event is not None
        return event

    async def user_says(self, openid: str, content: str = "hi") -> InboundMessage:
        """A C2C user message, injected at the sim and received by Herald over the gateway."""
        injected = await self.control.call("POST", f"/_sim/c2c/{openid}/messages", {"content": content})
        return await self._wait_for(injected["msg_id"])

    async def member_says(self, group: str, member: str, content: str = "hi") -> InboundMessage:
        injected = await self.control.call(
            "POST",
            f"/_sim/groups/{group}/messages",
            {"member_openid": member, "content": content, "at_bot": True},
        )
        return await self._wait_for(injected["msg_id"])

    async def advance(self, seconds: float) -> None:
        """Move both clocks; the sim first, so Herald never believes in a window the sim has closed."""
        await self.control.call("POST", "/_sim/clock/advance", {"seconds": seconds})
        await self.clock.advance(seconds)
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def stack(
    db: Database,
    *,
    sim: RunningSim | None = None,
    config: DeliveryConfig | None = None,
    rules: QQDeliveryConfig | None = None,
    rate_limits: bool = False,
    inbound: bool = True,
    clock: Clock | None = None,
    spool: MediaSpool | None = None,
    **sim_settings: Any,
) -> AsyncIterator[Stack]:
    async with contextlib.AsyncExitStack() as exits:
        if sim is None:
            # On virtual time the sim starts at noon in Beijing (see running_sim); a stack on a real
            # clock keeps the sim on real time too, or its anchors would be hours in Herald's future.
            sim = await exits.enter_async_context(
                running_sim(**sim_settings) if clock is None else serve(SimSettings(port=0, **sim_settings))
            )
        herald = Stack(
            sim,
            db,
            config or DeliveryConfig(),
            rules=rules,
            rate_limits=rate_limits,
            clock=clock,
            spool=spool,
        )
        await herald.start(inbound=inbound)
        try:
            yield herald
        finally:
            await herald.stop()
