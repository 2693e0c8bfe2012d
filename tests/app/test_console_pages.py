"""The operator's pages in real Chromium, against Herald and the emulator over sockets: every page
without a session goes to sign-in; sign in; a refused send shows its code and reason; retrying it
from the page delivers it; a job is cancelled from the page; a change without the CSRF token is
refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from herald.config import HeraldConfig
from herald.console.auth import hash_password, store_password_hash
from tests.app.herald_harness import harness
from tests.test_demo import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")
PASSWORD = "correct horse battery"


def enable_console(config: HeraldConfig) -> None:
    config.console.enabled = True
    config.console.port = 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_an_operator_sees_why_a_message_failed_and_fixes_it_from_the_browser(
    db_url: str, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    async with harness(db_url, configure=enable_console) as h:
        assert h.herald is not None and h.herald.console is not None and h.herald.db is not None
        await store_password_hash(h.herald.db, hash_password(PASSWORD), h.clock)
        base = h.herald.console.base_url
        await h.call("POST", "/_sim/faults", {"kind": "fail_next", "count": 1, "status": 400, "code": 22006})
        await h.user_says("op1", "please send 1 messages refused-once")
        await h.wait_delivered("c2c", "op1", 1)  # the final answer; the tool's send was refused
        await h.user_says("op1", "/every 1m 心跳")
        await h.wait_delivered("c2c", "op1", 2)

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            try:
                page = await browser.new_page(locale="zh-CN")
                await page.goto(f"{base}/jobs")
                assert page.url.startswith(f"{base}/login")  # no session: sign in first
                await page.fill("#password", "wrong password")
                await page.click("#sign-in")
                assert "Wrong password" in await page.content()
                await page.fill("#password", PASSWORD)
                await page.click("#sign-in")
                await page.wait_for_url(f"{base}/jobs")

                await page.goto(f"{base}/outbox")
                failed = page.locator('tr.item[data-state="failed"]')
                assert await failed.count() == 1
                reason = await failed.locator(".reason").inner_text()
                await page.screenshot(path=str(tmp_path / "outbox.png"), full_page=True)

                await page.goto(f"{base}/health")
                platform_ok = await page.locator("tr.component").first.get_attribute("data-ok")
                refusals = await page.locator("tr.code").all_inner_texts()
                await page.screenshot(path=str(tmp_path / "health.png"), full_page=True)
                await page.goto(f"{base}/outbox")

                refused = await page.request.post(f"{base}/outbox/retry", form={"ids": "x"})
                assert refused.status == 403  # signed in, but no CSRF token

                await failed.locator('input[type="checkbox"]').check()
                await page.click("#retry")
                await page.wait_for_selector("text=retrying 1 of 1")
                await h.advance_until_delivered("c2c", "op1", 4)  # the outbox's poll sends it

                await page.goto(f"{base}/jobs")
                assert await page.locator("tr.job").count() == 1
                await page.screenshot(path=str(tmp_path / "jobs.png"), full_page=True)
                await page.click("tr.job button.cancel")
                await page.wait_for_selector("text=已取消")
                jobs_left = await page.locator("tr.job").count()
            finally:
                await browser.close()
        delivered = [str(e["content"]) for e in await h.delivered("c2c", "op1")]
    assert reason.startswith("22006")
    assert platform_ok == "yes"
    assert len(refusals) == 1 and refusals[0].startswith("22006\t1")  # the refusal, grouped by code
    assert "refused-once #1" in delivered
    assert jobs_left == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_conversation_shows_each_turns_tool_calls_and_deliveries(db_url: str, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    async with harness(db_url, configure=enable_console) as h:
        assert h.herald is not None and h.herald.console is not None and h.herald.db is not None
        await store_password_hash(h.herald.db, hash_password(PASSWORD), h.clock)
        base = h.herald.console.base_url
        await h.user_says("seed", "请向我连续发送3条测试消息")
        await h.wait_delivered("c2c", "seed", 4)
        await h.idle()
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            try:
                page = await browser.new_page(locale="en-US")
                await page.goto(f"{base}/conversations")
                await page.fill("#password", PASSWORD)
                await page.click("#sign-in")
                await page.wait_for_url(f"{base}/conversations")
                await page.click("text=c2c:seed")
                turn = page.locator("section.turn").first
                calls = await turn.locator(".call").all_inner_texts()
                results = await turn.locator(".result").all_inner_texts()
                routes = [
                    await d.get_attribute("data-route") for d in await turn.locator("tr.delivery").all()
                ]
                seqs = await turn.locator("tr.delivery td.wide").all_inner_texts()
                await page.screenshot(path=str(tmp_path / "conversation.png"), full_page=True)
            finally:
                await browser.close()
    assert [c.split()[1] for c in calls] == ["send_message_to_user"] * 3
    assert all("delivered (passive)" in r for r in results) and len(results) == 3
    assert routes == ["passive"] * 4
    assert [s.rsplit("· ", 1)[-1] for s in seqs] == ["1", "2", "3", "4"]
