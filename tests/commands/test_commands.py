"""Slash commands through the whole stack; none of them reaches the model."""

from __future__ import annotations

import re

import pytest

from herald.commands import parse_command
from tests.app.herald_harness import harness


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("/help", ("help", "")),
        ("  /EVERY 1m 心跳 ", ("every", "1m 心跳")),
        ("/cancel abc123", ("cancel", "abc123")),
        ("/unknown thing", None),
        ("hello /help", None),
    ],
)
def test_parse_command(text: str, parsed: tuple[str, str] | None) -> None:
    assert parse_command(text) == parsed


async def test_every_sends_its_text_each_interval_until_cancelled(db_url: str) -> None:
    async with harness(db_url) as h:
        await h.user_says("oli", "/every 1m 心跳")
        entries = await h.wait_delivered("c2c", "oli", 1)
        created = entries[0]["content"]
        match = re.search(r"已创建任务 ([0-9a-f]+)", created)
        assert match, created
        for minute in range(1, 4):
            await h.advance(60)
            await h.wait_delivered("c2c", "oli", 1 + minute)
        await h.idle()
        assert [e["content"] for e in await h.delivered("c2c", "oli")][1:] == ["心跳"] * 3

        await h.user_says("oli", "/jobs")
        listing = (await h.wait_delivered("c2c", "oli", 5))[-1]["content"]
        assert match.group(1) in listing and "every 1m" in listing

        await h.user_says("oli", f"/cancel {match.group(1)}")
        await h.wait_delivered("c2c", "oli", 6)
        for _ in range(2):
            await h.advance(60)
        await h.idle()
        assert len(await h.delivered("c2c", "oli")) == 6
        assert h.script.calls == []  # no command reached the model


async def test_command_errors_and_help_and_status(db_url: str) -> None:
    async with harness(db_url) as h:
        for n, text in enumerate(
            [
                "/every 5s too-fast",
                "/every soon x",
                "/cancel nope",
                "/help",
                "/status",
                "/every 99999999999999d hi",
            ],
            1,
        ):
            await h.user_says("pat", text)
            await h.wait_delivered("c2c", "pat", n)
        replies = [e["content"] for e in await h.delivered("c2c", "pat")]
        assert "shorter than 1m" in replies[0]
        assert "not an interval" in replies[1]
        assert "no active job" in replies[2]
        assert "/every" in replies[3] and "/reset" in replies[3]
        assert replies[4].startswith("Herald ") and "0 active jobs" in replies[4]
        assert "longer than 365d (allowed: 1m to 365d)" in replies[5]
        assert h.script.calls == []
