"""A real headless Chromium (Debian's ``chromium``, driven by Playwright) against the
whole app serving the web chat and the admin page on a free port."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ADMIN_TOKEN = "a-long-enough-admin-token-for-tests"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: ``SCREENSHOTS_DIR`` if set (to look at them), else tmp."""
    folder = Path(os.environ.get("SCREENSHOTS_DIR", "") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
