"""Nothing inbound is lost: messages users send while Herald is stopped,
SIGKILLed, or cannot store them (a full disk) are answered once Herald is back, each exactly once.
Herald resumes its gateway session from the persisted resume point and the emulator replays."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic_ai.messages import ModelResponse, TextPart
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession

from herald.qq.gateway import GatewayClient
from herald.qq.webhook import WebhookReceiver
from herald.sim.app import RunningSim, serve
from herald.sim.settings import SimSettings
from tests.app.herald_harness import Harness, Script, harness, wait_for
from tests.app.test_crash import launch, write_config
from tests.sim_control import free_port

USER = "resume-user"


def answers(entries: list[dict[str, Any]]) -> Counter[str]:
    out = [e for e in entries if e.get("direction") == "out" and e.get("status") == 200]
    return Counter(str(e["content"]) for e in out)


async def answered(h: Harness, texts: list[str]) -> Counter[str]:
    """Waits until every text got its echo, then returns how often each echo was delivered."""
    wanted = {f"echo: {t}" for t in texts}
    entries = await wait_for(lambda: h.transcript("c2c", USER), lambda got: wanted <= set(answers(got)))
    return answers(entries)


class ShortEchoScript(Script):
    """Echoes only the first two words, so a long message gets a short, single-part answer."""

    def first(self, text: str) -> ModelResponse:
        return ModelResponse(parts=[TextPart("echo: " + " ".join(text.split()[:2]))])


def gateway_of(h: Harness) -> GatewayClient:
    assert h.herald is not None
    qq = h.herald.platforms.members["qq"] if h.herald.platforms else None
    gateway = getattr(qq, "gateway", None)
    assert isinstance(gateway, GatewayClient)
    return gateway


async def test_messages_sent_while_herald_is_stopped_are_answered_once_after_restart(db_url: str) -> None:
    async with harness(db_url) as h:
        await h.user_says(USER, "before")
        await answered(h, ["before"])
        await h.stop()  # graceful: the resume point is written on the way out

        missed = [f"while down {i}" for i in range(4)]
        for content in missed:
            await h.user_says(USER, content)

        await h.start()
        gateway = gateway_of(h)
        assert (gateway.identifies, gateway.resumes) == (0, 1)
        await h.user_says(USER, "after")
        await answered(h, ["before", *missed, "after"])
        await h.idle()
        counts = answers(await h.transcript("c2c", USER))
        assert counts == Counter({f"echo: {t}": 1 for t in ["before", *missed, "after"]})


async def test_a_refused_resume_is_logged_with_what_may_be_missed(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with harness(db_url) as h:
        await h.user_says(USER, "before")
        await answered(h, ["before"])
        seq = gateway_of(h).seq
        await h.stop()
        # The platform forgets the detached session (as after its resume timeout): op 9 follows.
        for endpoint in h.sim.state.bus.endpoints:
            sessions = getattr(endpoint, "sessions", None)
            if isinstance(sessions, dict):
                sessions.clear()
        with caplog.at_level(logging.WARNING, logger="herald.qq.gateway"):
            await h.start()
        gateway = gateway_of(h)
        assert gateway.identifies == 1 and gateway.lost_resumes == 1
        warnings = [r.getMessage() for r in caplog.records if "refused to resume" in r.getMessage()]
        assert len(warnings) == 1, caplog.text
        assert f"after s={seq}" in warnings[0] and "may have been missed" in warnings[0]


@pytest.mark.parametrize("stop", ["SIGKILL", "SIGTERM"])
async def test_messages_sent_while_herald_is_killed_are_answered_once(
    db_url: str, tmp_path: Path, stop: str
) -> None:
    config, record = tmp_path / "herald.toml", tmp_path / "calls.log"
    async with serve(SimSettings(port=0)) as sim, aiohttp.ClientSession() as http:
        write_config(config, sim, db_url)

        async def say(content: str) -> None:
            async with http.post(f"{sim.base_url}/_sim/c2c/{USER}/messages", json={"content": content}) as r:
                assert r.status == 200

        async def counts() -> Counter[str]:
            async with http.get(f"{sim.base_url}/_sim/transcript?scene=c2c&target={USER}") as r:
                return answers((await r.json())["entries"])

        async def until_answered(texts: list[str]) -> Counter[str]:
            wanted = {f"echo: {t}" for t in texts}
            async with asyncio.timeout(60):
                while not wanted <= set(got := await counts()):  # noqa: ASYNC110 (another process)
                    await asyncio.sleep(0.05)
            return got

        process = await launch(config, record)
        await say("first")
        await until_answered(["first"])
        process.send_signal(getattr(signal, stop))
        await process.wait()

        missed = [f"while {stop} {i}" for i in range(8)]
        for content in missed:
            await say(content)
        assert await sim_sessions_online(sim) is False

        process = await launch(config, record)
        try:
            await say("after")
            await until_answered(["first", *missed, "after"])
        finally:
            process.send_signal(signal.SIGTERM)
            await process.wait()
        assert await counts() == Counter({f"echo: {t}": 1 for t in ["first", *missed, "after"]})


async def sim_sessions_online(sim: RunningSim) -> bool:
    async with aiohttp.ClientSession() as http, http.get(f"{sim.base_url}/_sim/gateway") as r:
        data = await r.json()
    return any(s["online"] for s in data["sessions"])


class DiskLimit:
    """`PRAGMA max_page_count` on every connection of Herald's database: past it SQLite answers
    SQLITE_FULL ("database or disk is full"), as on a full filesystem. The pragma is per
    connection, so it is set on the held write connection now and on every one checked out later (the
    group commit replaces a connection whose transaction failed)."""

    def __init__(self, h: Harness) -> None:
        assert h.herald is not None and h.herald.db is not None
        self.db = h.herald.db
        self.pages: int | None = None
        event.listen(self.db.engine.sync_engine, "checkout", self._on_checkout)

    def _on_checkout(self, dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if self.pages is not None:
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA max_page_count = {self.pages}")
            cursor.close()

    async def _apply(self, fill: bool) -> None:
        async def work(session: AsyncSession) -> None:
            if fill:
                self.pages = int((await session.execute(text("PRAGMA page_count"))).scalar_one())
            await session.execute(text(f"PRAGMA max_page_count = {self.pages or 1_073_741_823}"))

        await self.db.writes.run(work)

    async def fill(self) -> None:
        # Free pages (a migration that copied a table leaves some) would still take writes: none
        # are left once the file is vacuumed, so "full" is full.
        async with self.db.engine.connect() as conn:
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).exec_driver_sql("VACUUM")
        await self._apply(fill=True)

    async def lift(self) -> None:
        self.pages = None
        await self._apply(fill=False)


async def test_messages_that_arrive_while_the_disk_is_full_are_answered_once_it_has_room(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'herald.db'}"
    async with harness(db_url, ShortEchoScript()) as h:
        await h.user_says(USER, "before")
        await answered(h, ["before"])
        await h.idle()
        gateway = gateway_of(h)
        disk = DiskLimit(h)

        # Each message is larger than a page, so storing it needs pages the database may not take.
        padding = "x" * 9000
        full = [f"full {i} {padding}" for i in range(8)]
        replies = [f"full {i}" for i in range(8)]
        with caplog.at_level(logging.INFO):
            await disk.fill()
            for content in full:
                await h.user_says(USER, content)
            async with asyncio.timeout(60):
                while gateway.store_failures < 2:  # noqa: ASYNC110 (a counter owned by the client)
                    await asyncio.sleep(0.02)
            assert not any(c.startswith("echo: full") for c in answers(await h.transcript("c2c", USER)))

            await disk.lift()
            await h.advance(120)  # wakes the gateway's backoff at once (it sleeps on Herald's clock)
            await answered(h, ["before", *replies])
            await h.idle()
        counts = answers(await h.transcript("c2c", USER))
        assert counts == Counter({f"echo: {t}": 1 for t in ["before", *replies]})
        messages = [r.getMessage() for r in caplog.records if r.name == "herald.qq.gateway"]
        assert any("was not stored" in m and "database or disk is full" in m for m in messages), messages
        assert any("storing works again" in m for m in messages), messages


async def test_webhook_pushes_that_cannot_be_stored_get_503_and_are_answered_once_in_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Webhook mode: a push was acknowledged (200) before it was stored, so the 8 messages that
    arrived while the disk was full were lost. Now the push gets 503, the platform redelivers
    it, and the pushes after it wait for it."""
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'herald.db'}"
    async with serve(SimSettings(port=0)) as sim:
        h = Harness(sim, db_url, ShortEchoScript())
        assert h.config.qq is not None
        port = free_port()
        h.config.qq = h.config.qq.model_copy(update={"transport": "webhook", "webhook_port": port})
        try:
            await h.start()
            await h.call("PUT", "/_sim/settings", {"webhook_url": f"http://127.0.0.1:{port}/qq/webhook"})
            async with asyncio.timeout(60):
                while not (await h.call("GET", "/_sim/webhook"))["online"]:  # noqa: ASYNC110 (validation)
                    await asyncio.sleep(0.02)
            await h.user_says(USER, "before")
            await answered(h, ["before"])
            await h.idle()
            assert h.herald is not None
            qq = h.herald.platforms.members["qq"] if h.herald.platforms else None
            receiver = getattr(qq, "webhook", None)
            assert isinstance(receiver, WebhookReceiver)
            disk = DiskLimit(h)

            padding = "x" * 9000
            full = [f"full {i} {padding}" for i in range(4)]
            with caplog.at_level(logging.WARNING):
                await disk.fill()
                for content in full:
                    await h.user_says(USER, content)
                async with asyncio.timeout(60):
                    while receiver.refused < 1:  # noqa: ASYNC110 (a counter owned by the receiver)
                        await asyncio.sleep(0.01)
                await disk.lift()
                replies = [f"full {i}" for i in range(4)]
                await answered(h, ["before", *replies])
                await h.idle()
            entries = await h.transcript("c2c", USER)
        finally:
            await h.close()
    assert answers(entries) == Counter({f"echo: {t}": 1 for t in ["before", *replies]})
    out = [str(e["content"]) for e in entries if e.get("direction") == "out" and e.get("status") == 200]
    assert out == [f"echo: {t}" for t in ["before", *replies]]
    messages = [r.getMessage() for r in caplog.records if r.name == "herald.qq.webhook"]
    assert any("was not stored" in m and "database or disk is full" in m for m in messages), messages


async def test_messages_that_arrive_while_postgresql_drops_the_connection_are_answered_once() -> None:
    """The database goes away under Herald (every backend terminated, as in a server restart):
    the first event's store fails, is asked for again, and everything is answered exactly once."""
    import asyncpg  # type: ignore[import-untyped]

    from tests.conftest import PG_ADMIN_DSN, PG_URL_TEMPLATE

    name = f"herald_t_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        async with harness(PG_URL_TEMPLATE.format(name=name)) as h:
            await h.user_says(USER, "before")
            await answered(h, ["before"])
            await h.idle()
            gateway = gateway_of(h)
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
            later = [f"later {i}" for i in range(4)]
            for content in later:
                await h.user_says(USER, content)
            await answered(h, ["before", *later])
            await h.idle()
            counts = answers(await h.transcript("c2c", USER))
            assert gateway.store_failures >= 1
        assert counts == Counter({f"echo: {t}": 1 for t in ["before", *later]})
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_sigkills_while_messages_keep_arriving_lose_and_duplicate_nothing(
    db_url: str, tmp_path: Path
) -> None:
    """Messages are injected without pause while Herald is SIGKILLed twice (so kills land before,
    during and after storing): every message is answered exactly once."""
    config, record = tmp_path / "herald.toml", tmp_path / "calls.log"
    async with serve(SimSettings(port=0)) as sim, aiohttp.ClientSession() as http:
        write_config(config, sim, db_url)
        sent: list[str] = []

        async def say(content: str) -> None:
            async with http.post(f"{sim.base_url}/_sim/c2c/{USER}/messages", json={"content": content}) as r:
                assert r.status == 200
            sent.append(content)

        async def counts() -> Counter[str]:
            async with http.get(f"{sim.base_url}/_sim/transcript?scene=c2c&target={USER}") as r:
                return answers((await r.json())["entries"])

        process = await launch(config, record)
        try:
            for round_ in range(3):
                for i in range(10):
                    await say(f"r{round_} m{i}")
                if round_ < 2:
                    process.send_signal(signal.SIGKILL)
                    await process.wait()
                    for i in range(3):
                        await say(f"r{round_} down {i}")
                    process = await launch(config, record)
            wanted = {f"echo: {t}" for t in sent}
            try:
                async with asyncio.timeout(60):
                    while not wanted <= set(await counts()):  # noqa: ASYNC110 (another process)
                        await asyncio.sleep(0.05)
            except TimeoutError:
                raise AssertionError(f"never answered: {sorted(wanted - set(await counts()))}") from None
        finally:
            process.send_signal(signal.SIGTERM)
            await process.wait()
        assert await counts() == Counter({f"echo: {t}": 1 for t in sent})
