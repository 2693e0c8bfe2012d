"""The emulator's web page in a real browser (Playwright driving the system Chromium)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from herald.sim.app import RunningSim, serve
from herald.sim.settings import SimSettings

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 10_000  # a ceiling for something that must appear, not a timing assertion

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"Chromium is not installed at {CHROMIUM}"
)
playwright_api = pytest.importorskip("playwright.async_api")


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    async with serve(SimSettings(port=0)) as running:
        yield running


@pytest.fixture
async def page(sim: RunningSim) -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            tab = await browser.new_page()
            await tab.goto(sim.base_url + "/")
            yield tab
        finally:
            await browser.close()


async def bot_sends(sim: RunningSim, openid: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The bot side: a real OpenAPI send with a real token."""
    headers = {"Authorization": "QQBot " + sim.state.issue_token().value}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sim.base_url}/v2/users/{openid}/messages", json=body, headers=headers) as response,
    ):
        result: dict[str, Any] = await response.json()
        return response.status, result


async def test_typing_as_a_c2c_user_shows_the_message_and_the_bots_replies(
    sim: RunningSim, page: Any
) -> None:
    assert not await page.locator("#composer").is_visible()  # nothing to type into yet
    await page.fill("#new-target", "user-page")
    await page.click("#new-conversation button")
    await page.locator("#composer").wait_for(state="visible", timeout=WAIT_MS)
    assert not await page.locator("#group-controls").is_visible()  # no member or @bot in C2C
    await page.fill("#content", "hello from the page")
    await page.click("#send")

    user_bubble = page.locator("#transcript li.user .bubble", has_text="hello from the page")
    await user_bubble.wait_for(timeout=WAIT_MS)
    # The page went through the control API: the emulator has an anchor for that message.
    (anchor,) = [a for a in sim.state.anchors.values() if a.target == "user-page"]

    status, _ = await bot_sends(
        sim, "user-page", {"msg_type": 0, "content": "hi, human", "msg_id": anchor.msg_id}
    )
    assert status == 200
    await page.locator("#transcript li.bot .bubble", has_text="hi, human").wait_for(timeout=WAIT_MS)

    # A send the platform refused is shown with its code, not as a delivered bubble.
    status, error = await bot_sends(
        sim, "user-page", {"msg_type": 0, "content": "oops", "msg_id": "ROBOT1.0_bogus"}
    )
    assert status == 400 and error["code"] == 40034024
    failed = page.locator("#transcript li.bot.failed", has_text="oops")
    await failed.wait_for(timeout=WAIT_MS)
    assert "40034024" in await failed.locator(".code").inner_text()

    conversation = page.locator('#conversations li[data-key="c2c:user-page"]')
    await conversation.wait_for(timeout=WAIT_MS)


async def test_typing_in_a_group_as_a_member_with_and_without_at_bot(sim: RunningSim, page: Any) -> None:
    await page.select_option("#new-scene", "group")
    await page.fill("#new-target", "group-page")
    await page.click("#new-conversation button")
    await page.locator("#group-controls").wait_for(state="visible", timeout=WAIT_MS)
    await page.fill("#member", "member-42")
    await page.fill("#content", "@ you")
    await page.click("#send")
    await page.locator("#transcript li.user .bubble", has_text="@ you").wait_for(timeout=WAIT_MS)

    await page.uncheck("#at-bot")
    await page.fill("#content", "just chatting")
    await page.click("#send")
    await page.locator("#transcript li.user .bubble", has_text="just chatting").wait_for(timeout=WAIT_MS)

    kinds = [entry["t"] for entry in sim.state.transcripts[("group", "group-page")]]
    assert kinds == ["GROUP_AT_MESSAGE_CREATE", "GROUP_MESSAGE_CREATE"]
    assert {a.author for a in sim.state.anchors.values() if a.target == "group-page"} == {"member-42"}


async def test_conversations_started_elsewhere_appear_in_the_list(sim: RunningSim, page: Any) -> None:
    sim.state.inject_c2c("user-elsewhere", "injected by a test")
    item = page.locator('#conversations li[data-key="c2c:user-elsewhere"]')
    await item.wait_for(timeout=WAIT_MS)
    await item.click()
    await page.locator("#transcript li.user .bubble", has_text="injected by a test").wait_for(timeout=WAIT_MS)
    assert "user-elsewhere" in await page.inner_text("#chat-title")
