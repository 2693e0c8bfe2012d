"""The jobs pages in real Chromium, against Herald and the emulator over sockets: a job shows its
next firings; paused from the page it stops firing while the clock moves on, resumed it fires
nothing it missed; run now from its page fires it once, and the run appears among its past runs
with its delivery, linked to its turn in the conversation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.app.console_browser import enable_console, launch, set_password, sign_in
from tests.app.herald_harness import harness
from tests.test_demo import CHROMIUM

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_an_operator_pauses_resumes_and_runs_a_job_from_the_browser(
    db_url: str, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    async with harness(db_url, configure=enable_console) as h:
        assert h.herald is not None and h.herald.console is not None and h.herald.db is not None
        await set_password(h)
        base = h.herald.console.base_url
        await h.user_says("op2", "请启用心跳任务")  # the agent creates an every-minute job
        await h.wait_delivered("c2c", "op2", 1)
        await h.idle()

        async with async_playwright() as playwright:
            browser = await launch(playwright)
            try:
                page = await browser.new_page(locale="en-US")
                await sign_in(page, base, "/jobs")
                row = page.locator("tr.job")
                firings = await row.locator(".firings div").count()
                job_id = await row.get_attribute("data-id")

                await row.locator("input.reason").fill("quiet hours")
                await row.locator("button.pause").click()
                await page.wait_for_selector("text=paused")
                paused_state = await row.get_attribute("data-state")
                paused_text = await row.inner_text()
                await page.screenshot(path=str(tmp_path / "jobs-paused.png"), full_page=True)
                for _ in range(3):  # three of its minutes pass while it is paused
                    await h.advance(60)
                await h.idle()
                while_paused = len(await h.delivered("c2c", "op2"))

                await row.locator("button.resume").click()
                await page.wait_for_selector("text=resumed")
                resumed_state = await row.get_attribute("data-state")
                await h.idle()
                after_resume = len(await h.delivered("c2c", "op2"))

                await page.click(f"tr.job a[href='/jobs/{job_id}']")
                await page.wait_for_url(f"{base}/jobs/{job_id}")
                no_runs = await page.locator("tr.run").count()
                detail_firings = await page.locator("#job .firings div").count()
                await page.click("button.run")
                await page.wait_for_selector("text=running now")
                await h.wait_delivered("c2c", "op2", 2)
                await h.idle()
                await page.reload()
                run = page.locator("tr.run")
                runs = await run.count()
                outcome = await run.first.get_attribute("data-outcome")
                delivery = await run.first.locator(".delivery").get_attribute("data-state")
                delivery_text = await run.first.locator(".delivery").inner_text()
                link = await run.first.locator("a.to-conversation").get_attribute("href")
                await page.screenshot(path=str(tmp_path / "job-en.png"), full_page=True)
                await page.goto(f"{base}/jobs/{job_id}?lang=zh")
                await page.screenshot(path=str(tmp_path / "job-zh.png"), full_page=True)
                await page.goto(f"{base}/jobs")
                await page.screenshot(path=str(tmp_path / "jobs-zh.png"), full_page=True)

                assert link is not None
                await page.goto(f"{base}{link}")
                turn_shown = await page.locator(f"section.turn#{link.rsplit('#', 1)[-1]}").count()
            finally:
                await browser.close()
        delivered = [str(e["content"]) for e in await h.delivered("c2c", "op2")]

    assert firings == 3  # the list shows three; the job's page five
    assert paused_state == "paused" and "quiet hours" in paused_text
    assert while_paused == 1 and after_resume == 1  # nothing fired while paused, nor on resuming
    assert resumed_state == "active"
    assert no_runs == 0 and detail_firings == 5
    assert delivered[-1] == "💓 心跳"
    assert runs == 1 and outcome == "done" and delivery == "delivered"
    # Within the window of the user's message, so its second passive reply.
    assert "passive · msg_seq 2" in delivery_text
    assert link.startswith("/conversations/c2c:op2#turn-")
    assert turn_shown == 1
