"""What the console's browser tests share: a console on a free port, its password, Chromium, and
signing in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from herald.config import HeraldConfig
from herald.console.auth import hash_password, store_password_hash
from tests.app.herald_harness import Harness
from tests.test_demo import CHROMIUM, CHROMIUM_ARGS

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, Playwright

PASSWORD = "correct horse battery"


def enable_console(config: HeraldConfig) -> None:
    config.console.enabled = True
    config.console.port = 0


async def set_password(h: Harness) -> str:
    """Give the console its password; returns its base URL."""
    assert h.herald is not None and h.herald.console is not None and h.herald.db is not None
    await store_password_hash(h.herald.db, hash_password(PASSWORD), h.clock)
    return h.herald.console.base_url


async def launch(playwright: Playwright) -> Browser:
    return await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


async def sign_in(page: Page, base: str, path: str) -> None:
    """Open `path`, which sends a page without a session to sign-in, and sign in."""
    await page.goto(f"{base}{path}")
    await page.fill("#password", PASSWORD)
    await page.click("#sign-in")
    await page.wait_for_url(f"{base}{path}")
