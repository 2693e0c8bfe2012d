"""The settings page in real Chromium, against Herald and the emulator over sockets: the operator
edits the system prompt and turns a plugin's tool off, and the very next turn runs with both (as
the scripted model received them), without a restart; invalid values are refused; both changes are
audited with who made them; a change without the CSRF token is refused; no secret reaches the page."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from herald.config import HeraldConfig
from herald.plugin import Plugin
from tests.app.console_browser import enable_console, launch, set_password, sign_in
from tests.app.herald_harness import harness
from tests.test_demo import CHROMIUM

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")
API_TOKEN = "api-token-for-scripts-3141"
PIRATE = "You are a pirate captain. Answer in pirate speak."

coin = Plugin("coin", "A coin")


@coin.tool
def flip() -> str:
    """Flip a coin."""
    return "heads"


def console_with_token(config: HeraldConfig) -> None:
    enable_console(config)
    config.console.api_token = SecretStr(API_TOKEN)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_an_operator_changes_the_prompt_and_the_tools_and_the_next_turn_uses_them(
    db_url: str, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    async with harness(db_url, configure=console_with_token, plugins=[coin]) as h:
        assert h.herald is not None and h.herald.console is not None and h.herald.db is not None
        assert h.config.qq is not None
        bot_secret = h.config.qq.secret.get_secret_value()
        await set_password(h)
        base = h.herald.console.base_url
        await h.user_says("op1", "hello before")
        await h.wait_delivered("c2c", "op1", 1)
        before_prompt, before_tools = h.script.instructions[-1], h.script.offered[-1]

        async with async_playwright() as playwright:
            browser = await launch(playwright)
            try:
                page = await browser.new_page(locale="en-US")
                await sign_in(page, base, "/settings")
                first_html = await page.content()
                tool_boxes = await page.locator("input[data-tool]").evaluate_all(
                    "boxes => boxes.map(b => [b.value, b.checked])"
                )

                await page.fill("#system-prompt", "   ")
                await page.click("#save-prompt")
                empty_refused = await page.locator(".error").inner_text()

                await page.fill("#system-prompt", PIRATE)
                await page.click("#save-prompt")
                await page.wait_for_selector("text=system prompt saved")
                await page.uncheck('input[data-tool="coin_flip"]')
                await page.click("#save-tools")
                await page.wait_for_selector("text=tools saved")

                no_csrf = await page.request.post(f"{base}/settings/prompt", form={"system_prompt": "x"})
                forged_tool = await page.request.post(
                    f"{base}/settings/tools",
                    form={
                        "csrf": await page.locator('#tools-form input[name="csrf"]').input_value(),
                        "tools": "rm_rf",
                    },
                )

                forged_text = await forged_tool.text()

                await h.user_says("op1", "hello after")
                await h.wait_delivered("c2c", "op1", 2)
                after_prompt, after_tools = h.script.instructions[-1], h.script.offered[-1]

                await page.goto(f"{base}/settings")
                audit = await page.locator("tr.change").all_inner_texts()
                prompt_source = await page.locator(
                    'tr.setting[data-key="agent.system_prompt"] .source'
                ).inner_text()
                edited_html = await page.content()
                await page.screenshot(path=str(tmp_path / "settings-en.png"), full_page=True)

                zh = await browser.new_page(locale="zh-CN")
                await sign_in(zh, base, "/settings")
                await zh.screenshot(path=str(tmp_path / "settings-zh.png"), full_page=True)
                zh_heading = await zh.locator("h1").inner_text()
            finally:
                await browser.close()

        # A script resets the prompt with the API token (no session, no CSRF).
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{base}/settings/reset",
                data={"key": "agent.system_prompt"},
                headers={"Authorization": f"Bearer {API_TOKEN}"},
                allow_redirects=False,
            ) as reset:
                reset_status = reset.status
        await h.user_says("op1", "hello reset")
        await h.wait_delivered("c2c", "op1", 3)
        reset_prompt = h.script.instructions[-1]

    assert before_prompt is not None and before_prompt.startswith(h.config.agent.system_prompt)
    # Herald's own tools and the plugin's (with those of any plugin installed here), all offered.
    assert {"coin_flip", "future_task", "send_message_to_user"} <= set(before_tools)
    assert sorted(name for name, checked in tool_boxes if checked) == sorted(before_tools)
    assert "cannot be empty" in empty_refused
    assert no_csrf.status == 403
    assert forged_tool.status == 400 and "unknown tool(s): rm_rf" in forged_text
    assert after_prompt is not None and after_prompt.startswith(PIRATE)
    assert "coin_flip" not in after_tools and "send_message_to_user" in after_tools
    assert len(audit) == 2
    assert "console 127.0.0.1" in audit[0] and "agent.disabled_tools" in audit[0] and "coin_flip" in audit[0]
    assert "agent.system_prompt" in audit[1] and "pirate captain" in audit[1]
    assert prompt_source == "console"
    for html in (first_html, edited_html):
        assert bot_secret not in html and API_TOKEN not in html
        assert 'data-key="qq.secret"' in html
    assert zh_heading == "设置"
    assert reset_status == 303
    assert reset_prompt is not None and reset_prompt.startswith(h.config.agent.system_prompt)
