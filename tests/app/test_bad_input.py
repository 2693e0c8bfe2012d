"""Bad inbound input is cleaned or rejected where it enters (qq/events.py), never dropped with only
an ERROR: text the database cannot store is cleaned and answered, one malformed attachment costs
only itself, and an over-long message id is rejected with a WARNING that names it, without
holding up the messages after it. Herald and the emulator over real sockets, on both backends."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tests.app.herald_harness import Harness, harness, wait_for

USER = "bad-input-user"


def replies(entries: list[dict[str, Any]]) -> list[str]:
    return [str(e["content"]) for e in entries if e.get("direction") == "out" and e.get("status") == 200]


async def replied(h: Harness, count: int) -> list[str]:
    entries = await wait_for(lambda: h.transcript("c2c", USER), lambda got: len(replies(got)) >= count)
    return replies(entries)


async def say_raw(h: Harness, body: dict[str, Any]) -> None:
    """Posts JSON as written by `json.dumps`, so a lone surrogate travels as its `\\ud800` escape."""
    data = json.dumps(body).encode()
    url = f"{h.sim.base_url}/_sim/c2c/{USER}/messages"
    async with h.http.post(url, data=data, headers={"Content-Type": "application/json"}) as r:
        assert r.status == 200, await r.text()


async def test_unstorable_text_is_cleaned_and_answered(db_url: str) -> None:
    async with harness(db_url) as h:
        await say_raw(h, {"content": "lone \ud800 surrogate"})
        await say_raw(h, {"content": "nul\x00byte"})
        got = await replied(h, 2)
        await h.idle()
    assert got == ["echo: lone \ufffd surrogate", "echo: nulbyte"]


async def test_a_malformed_attachment_is_dropped_and_the_message_kept(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    attachments: list[Any] = [
        "not an object",
        {"url": "https://example.com/a.png", "content_type": "image/png", "filename": "a.png"},
        {"url": 12345, "content_type": ["wrong"]},
    ]
    async with harness(db_url) as h:
        with caplog.at_level(logging.WARNING, logger="herald.qq.events"):
            await say_raw(h, {"content": "look", "attachments": attachments})
            got = await replied(h, 1)
        await h.idle()
    assert got == ["echo: look\n[image: a.png, https://example.com/a.png]"]
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 2 and "attachment #1" in dropped[0] and "attachment #3" in dropped[1], dropped


async def test_an_over_long_message_id_is_rejected_with_a_warning_and_holds_nothing_up(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    long_id = "ROBOT1.0_" + "x" * 300
    async with harness(db_url) as h:
        with caplog.at_level(logging.WARNING, logger="herald.qq.events"):
            d = {"id": long_id, "content": "too long", "author": {"user_openid": USER}}
            await h.call("POST", "/_sim/events", {"t": "C2C_MESSAGE_CREATE", "d": d})
            await h.user_says(USER, "after")
            got = await replied(h, 1)
        await h.idle()
    assert got == ["echo: after"]
    warnings = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "C2C_MESSAGE_CREATE" in warnings[0] and f"message id is {len(long_id)} characters" in warnings[0]
