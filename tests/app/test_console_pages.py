"""The operator's pages in real Chromium, against Herald and the emulator over sockets: every page
without a session goes to sign-in; sign in; a refused send shows its code and reason; retrying it
from the page delivers it; a job is cancelled from the page; a change without the CSRF token is
refused."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.app.console_browser import PASSWORD, enable_console, launch, set_password, sign_in
from tests.app.herald_harness import harness
from tests.test_demo import CHROMIUM

if TYPE_CHECKING:
    from playwright.async_api import Page

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_an_operator_sees_why_a_message_failed_and_fixes_it_from_the_browser(
    db_url: str, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    async with harness(db_url, configure=enable_console) as h:
        assert h.herald is not None and h.herald.console is not None and h.herald.db is not None
        await set_password(h)
        base = h.herald.console.base_url
        await h.call("POST", "/_sim/faults", {"kind": "fail_next", "count": 1, "status": 400, "code": 22006})
        await h.user_says("op1", "please send 1 messages refused-once")
        await h.wait_delivered("c2c", "op1", 1)  # the final answer; the tool's send was refused
        await h.user_says("op1", "/every 1m 心跳")
        await h.wait_delivered("c2c", "op1", 2)

        async with async_playwright() as playwright:
            browser = await launch(playwright)
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
                await page.wait_for_selector("text=正在重试 1/1 条")
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
        await set_password(h)
        base = h.herald.console.base_url
        await h.user_says("seed", "请向我连续发送3条测试消息")
        await h.wait_delivered("c2c", "seed", 4)
        await h.idle()
        async with async_playwright() as playwright:
            browser = await launch(playwright)
            try:
                page = await browser.new_page(locale="en-US")
                await sign_in(page, base, "/conversations")
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
    assert [s.rsplit("· ", 1)[-1] for s in seqs] == ["msg_seq 1", "msg_seq 2", "msg_seq 3", "msg_seq 4"]


async def ledger_panel(page: Page) -> tuple[str | None, str, list[tuple[str, str, str]]]:
    """The next send's route and sentence, and each live anchor as (id, time left, replies left)."""
    next_send = page.locator("#ledger .next-send")
    anchors = [
        (
            await row.get_attribute("data-id") or "",
            await row.locator(".left").inner_text(),
            await row.locator(".replies").inner_text(),
        )
        for row in await page.locator("#ledger tr.anchor").all()
    ]
    return (
        await next_send.get_attribute("data-route"),
        " ".join((await next_send.inner_text()).split()),
        anchors,
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_conversation_shows_its_reply_ledger_and_the_next_sends_route(
    db_url: str, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    async with harness(db_url, configure=enable_console) as h:
        assert h.herald is not None and h.herald.console is not None and h.herald.db is not None
        await set_password(h)
        base = h.herald.console.base_url
        msg_id = await h.user_says("ledger", "hello")
        await h.wait_delivered("c2c", "ledger", 1)  # the answer took one reply of the anchor
        await h.idle()
        async with async_playwright() as playwright:
            browser = await launch(playwright)
            try:
                page = await browser.new_page(locale="en-US")
                await sign_in(page, base, "/conversations/c2c:ledger")
                fresh = await ledger_panel(page)
                await page.screenshot(path=str(tmp_path / "ledger-passive.png"), full_page=True)
                await page.goto(f"{base}/conversations/c2c:ledger?lang=zh")
                fresh_zh = await ledger_panel(page)
                await page.screenshot(path=str(tmp_path / "ledger-passive-zh.png"), full_page=True)

                await h.advance(3600)  # the C2C window passes
                await page.reload()
                late_zh = await ledger_panel(page)
                await page.screenshot(path=str(tmp_path / "ledger-proactive-zh.png"), full_page=True)
                await page.goto(f"{base}/conversations/c2c:ledger?lang=en")
                late = await ledger_panel(page)
                proactive = " ".join((await page.locator("#ledger .proactive").inner_text()).split())
                await page.screenshot(path=str(tmp_path / "ledger-proactive.png"), full_page=True)
            finally:
                await browser.close()

    route, sentence, anchors = fresh
    assert route == "reply"
    assert [(anchor_id, replies) for anchor_id, _, replies in anchors] == [(msg_id, "3")]
    assert anchors[0][1].startswith("59:")  # mm:ss of the window, less the safety margin
    assert sentence.startswith("Next send: reply on anchor") and "(3 replies left, 59:" in sentence
    assert fresh_zh[0] == "reply" and "被动回复" in fresh_zh[1] and "剩 3 次回复" in fresh_zh[1]
    assert late_zh[0] == "proactive" and late_zh[2] == [] and "主动消息" in late_zh[1]
    assert late[0] == "proactive" and late[1] == "Next send: proactive (1000 of 1000 in 24 h left)"
    assert proactive.startswith("Proactive: unknown") and proactive.endswith("0 of 1000 used in 24 h")
