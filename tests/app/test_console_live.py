"""The console's live pages in real Chromium: an operator with the conversation open watches the
seed turn arrive, with its four deliveries and their routes, without reloading; the health page
shows the last inbound event and the access token's expiry; a pending item is
cancelled from the outbox page and never sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.app.console_browser import enable_console, launch, set_password, sign_in
from tests.app.herald_harness import harness
from tests.test_demo import CHROMIUM

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_an_open_conversation_page_shows_the_seed_turn_as_it_is_delivered(
    db_url: str, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    async with harness(db_url, configure=enable_console) as h:
        assert h.herald is not None and h.herald.console is not None and h.herald.db is not None
        await set_password(h)
        base = h.herald.console.base_url
        async with async_playwright() as playwright:
            browser = await launch(playwright)
            try:
                page = await browser.new_page(locale="zh-CN")
                await sign_in(page, base, "/conversations/c2c:seed")
                await page.wait_for_selector('#live-state[data-connected="yes"]')
                before = await page.locator("section.turn").count()
                page_loads: list[str] = []
                page.on("load", lambda _: page_loads.append(page.url))

                await h.user_says("seed", "请向我连续发送3条测试消息")
                await h.wait_delivered("c2c", "seed", 4)
                shown = "section.turn tr.delivery[data-state=delivered]"
                delivered = page.locator(shown)
                await page.wait_for_function(f"() => document.querySelectorAll('{shown}').length == 4")
                routes = [await d.get_attribute("data-route") for d in await delivered.all()]
                await page.screenshot(path=str(tmp_path / "live-conversation.png"), full_page=True)
                reloads = list(page_loads)
                await page.goto(f"{base}/health")
                health = await page.locator("tr.component").all_inner_texts()
                await page.screenshot(path=str(tmp_path / "health.png"), full_page=True)
                title_zh = await page.locator("h1").inner_text()
                await page.click("#lang-switch")  # the browser says Chinese; the operator picks English
                await page.wait_for_selector("text=Sign out")
                title_en = await page.locator("h1").inner_text()
                await page.goto(f"{base}/outbox")  # the choice holds for the session
                outbox_title = await page.locator("h1").inner_text()
            finally:
                await browser.close()
    assert before == 0
    assert routes == ["passive"] * 4
    assert reloads == []  # it arrived through the live stream, not a reload
    platform = next(row for row in health if row.startswith("platform qq"))
    assert "last event" in platform and "ago" in platform
    token = next(row for row in health if row.startswith("access token"))
    assert "expires in" in token  # the emulator's token lasts 7200 s
    assert (title_zh, title_en, outbox_title) == ("运行状况", "Health", "Outbox")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_waiting_item_is_cancelled_from_the_outbox_page_and_never_sent(
    db_url: str, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    async with harness(db_url, configure=enable_console) as h:
        assert h.herald is not None and h.herald.console is not None and h.herald.db is not None
        await set_password(h)
        base = h.herald.console.base_url
        # The platform answers 500 to the next sends: the item waits for its next try.
        await h.call("POST", "/_sim/faults", {"kind": "fail_next", "count": 3, "status": 500, "code": 850027})
        await h.user_says("op2", "/help")
        await h.wait_for_request_code(850027)
        async with async_playwright() as playwright:
            browser = await launch(playwright)
            try:
                page = await browser.new_page(locale="en-US")
                await sign_in(page, base, "/outbox")
                waiting = page.locator('tr.item[data-state="waiting"]')
                await waiting.first.wait_for()
                waiting_reason = await waiting.first.locator(".reason").inner_text()
                no_csrf = await page.request.post(f"{base}/outbox/cancel", form={"ids": "x"})
                await waiting.first.locator('input[type="checkbox"]').check()
                await page.click("#cancel")
                await page.wait_for_selector("text=cancelled 1 of 1")
                cancelled = page.locator('tr.item[data-state="dead"]')
                cancelled_reason = await cancelled.first.locator(".reason").inner_text()
                await page.screenshot(path=str(tmp_path / "outbox-cancelled.png"), full_page=True)
            finally:
                await browser.close()
        await h.advance(120)  # past every backoff: nothing is sent for the cancelled item
        await h.idle()
        sent = await h.delivered("c2c", "op2")
    assert waiting_reason.startswith("850027")
    assert no_csrf.status == 403
    assert "cancelled by the operator" in cancelled_reason
    assert sent == []
