"""Headless Chromium for the UI tests (Debian's, never a downloaded browser)."""

from __future__ import annotations

import shutil
from typing import Any

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def launch_chromium(playwright: Any) -> Any:
    """The system ``chromium`` under Playwright, with no background network traffic."""
    return playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)


def watched_page(browser: Any, **options: Any) -> Any:
    """A new page whose console errors and uncaught exceptions collect in ``page.errors``."""
    page = browser.new_page(**options)
    page.errors = []
    page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    return page


