"""The Chromium fixture every browser test shares (see chromium.py for its launch options)."""

from __future__ import annotations

import shutil

import pytest

from .chromium import CHROMIUM_ARGS, SCREENSHOTS


@pytest.fixture
def chromium(live_server, monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the test's ORM calls stay plain
    # synchronous calls, so Django's async guard is lifted for this test only.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from django.db import connections
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            connections.close_all()
            browser.close()
