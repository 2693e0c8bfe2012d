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
    await page.fill("#new-target", "user-page")
    await page.click("#new-conversation button")
    await page.locator("#composer").wait_for(state="visible", timeout=WAIT_MS)
    assert not await page.locator("#group-controls").is_visible()  # no member or @bot in C2C
    await page.fill("#content", "hello from the page")
    await page.click("#send")

    user_bubble = page.locator("#transcript li.user .bubble", has_text="hello from the page")
    await user_bubble.wait_for(timeout=WAIT_MS)
    # The page went through the control API: the emulator has an anchor for that message.
    (anchor,) = [a for a in sim.state.anchors.messages.values() if a.target == "user-page"]

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

    kinds = [entry["t"] for entry in sim.state.transcripts.conversations[("group", "group-page")]]
    assert kinds == ["GROUP_AT_MESSAGE_CREATE", "GROUP_MESSAGE_CREATE"]
    assert {a.author for a in sim.state.anchors.messages.values() if a.target == "group-page"} == {
        "member-42"
    }


async def test_conversations_started_elsewhere_appear_in_the_list(sim: RunningSim, page: Any) -> None:
    sim.inject.c2c("user-elsewhere", "injected by a test")
    item = page.locator('#conversations li[data-key="c2c:user-elsewhere"]')
    await item.wait_for(timeout=WAIT_MS)
    await item.click()
    await page.locator("#transcript li.user .bubble", has_text="injected by a test").wait_for(timeout=WAIT_MS)
    assert "user-elsewhere" in await page.inner_text("#chat-title")


async def test_the_page_opens_a_conversation_at_once(sim: RunningSim, page: Any) -> None:
    """No openid to invent: a private chat with a default user is open and ready to type into."""
    await page.locator("#composer").wait_for(state="visible", timeout=WAIT_MS)
    assert "demo-user" in await page.inner_text("#chat-title")
    await page.fill("#content", "你好")
    await page.click("#send")
    await page.locator("#transcript li.user .bubble", has_text="你好").wait_for(timeout=WAIT_MS)
    (entry,) = sim.state.transcripts.conversations[("c2c", "demo-user")]
    assert entry["content"] == "你好"


async def test_an_existing_conversation_is_opened_first(sim: RunningSim) -> None:
    sim.inject.c2c("user-before", "已经在聊")
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            tab = await browser.new_page()
            await tab.goto(sim.base_url + "/")
            await tab.locator("#transcript li.user .bubble", has_text="已经在聊").wait_for(timeout=WAIT_MS)
            assert "user-before" in await tab.inner_text("#chat-title")
            assert tab.url.endswith("#c2c:user-before")  # a reload keeps the conversation
        finally:
            await browser.close()


async def test_bubbles_show_route_anchor_and_msg_seq_and_bots_post_notices(
    sim: RunningSim, page: Any, tmp_path: Any
) -> None:
    user = "demo-user"
    injected = sim.inject.c2c(user, "请向我连续发送3条测试消息")
    async with aiohttp.ClientSession() as http:
        async with http.put(
            f"{sim.base_url}/_sim/notices/herald",
            json={"text": "model failing: APIConnectionError: Connection error.", "level": "error"},
        ) as response:
            assert response.status == 200
        async with http.put(f"{sim.base_url}/_sim/notices/x", json={"text": "t", "level": "loud"}) as bad:
            assert bad.status == 400 and "level" in (await bad.json())["error"]
    for seq in (1, 2):
        status, _ = await bot_sends(
            sim,
            user,
            {"msg_type": 0, "content": f"测试消息 {seq}", "msg_id": injected.msg_id, "msg_seq": seq},
        )
        assert status == 200
    status, _ = await bot_sends(sim, user, {"msg_type": 0, "content": "主动消息"})
    assert status == 200
    status, _ = await bot_sends(
        sim, user, {"msg_type": 0, "content": "重复的 msg_seq", "msg_id": injected.msg_id, "msg_seq": 2}
    )
    assert status == 400

    bots = page.locator("#transcript li.bot")
    await bots.nth(3).wait_for(timeout=WAIT_MS)
    routes = [await bots.nth(i).locator(".delivery").get_attribute("data-route") for i in range(4)]
    assert routes == ["passive", "passive", "proactive", "passive"]
    first = bots.nth(0).locator(".delivery")
    assert await first.get_attribute("data-anchor") == injected.msg_id
    assert await first.get_attribute("data-msg-seq") == "1"
    assert "msg_id ROBOT1.0_" in await first.inner_text() and "msg_seq 1" in await first.inner_text()
    assert await bots.nth(2).locator(".delivery").get_attribute("data-anchor") is None
    refused = bots.nth(3)
    assert "failed" in (await refused.get_attribute("class") or "")
    assert "40054005" in await refused.locator(".code").inner_text()

    banner = page.locator('#notices .notice.error[data-source="herald"]')
    await banner.wait_for(timeout=WAIT_MS)
    assert "APIConnectionError" in await banner.inner_text()

    shot = os.environ.get("HERALD_PAGE_SCREENSHOT") or str(tmp_path / "page.png")
    await page.set_viewport_size({"width": 1100, "height": 640})
    await page.screenshot(path=shot)

    async with aiohttp.ClientSession() as http:
        async with http.delete(f"{sim.base_url}/_sim/notices/herald") as response:
            assert (await response.json()) == {"deleted": True}
    await page.locator("#notices .notice").wait_for(state="detached", timeout=WAIT_MS)
