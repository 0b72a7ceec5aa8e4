"""The API docs render offline in Chromium: Swagger UI and Redoc from drf-spectacular-sidecar."""

from __future__ import annotations

import pytest

from .chromium import SCREENSHOTS
from .test_lead_and_scientist import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_swagger_ui_and_redoc_render_the_schema_without_a_network(
    live_server,
    chromium,
    make_user,  # noqa: F811
):
    make_user("lead", password="pw-for-tests-1")
    context, page, errors = log_in(chromium, live_server, "lead", "pw-for-tests-1")
    outside: list[str] = []
    # Anything fetched from another host would be a CDN: the page must not need one.
    page.on(
        "request",
        lambda request: (
            outside.append(request.url)
            if not request.url.startswith((live_server.url, "data:", "blob:"))
            else None
        ),
    )
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".opblock-summary-path >> text=/api/projects/{slug}/tasks/next/")
    page.screenshot(path=SCREENSHOTS / "api-docs-swagger.png", full_page=False)
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(f"{live_server.url}/api/redoc/")
    page.wait_for_selector("text=Pagewise API")
    page.wait_for_selector("text=/api/projects/{slug}/tasks/next/", state="attached")
    page.screenshot(path=SCREENSHOTS / "api-docs-redoc.png", full_page=False)
    # Redoc's footer asks for its logo on a CDN; the page's policy refuses it before it leaves.
    logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    assert [url for url in outside if url != logo] == []
    if logo in outside:
        assert any(logo in line and "has been blocked" in line for line in console), console
    assert errors == []
    context.close()
