"""Reading an item in a real Chromium, keyboard only: the whole text in place (`e`), a safe source
link, image zoom (`i`, ←/→, Esc) and a query bar that stays in view on a long page."""

from __future__ import annotations

import pytest

from labeling.models import Item

from .chromium import SCREENSHOTS
from .test_annotator import ALL_IMAGES_LOADED, browser_page, demo_tasks  # noqa: F401
from .test_annotator_workflow import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG_TEXT = " ".join(
    f"Paragraph {n}: the domestic cat is a small carnivorous mammal kept as a pet."
    for n in range(40)
)


def test_whole_text_source_link_zoom_and_sticky_query_with_the_keyboard(
    live_server,
    browser_page,  # noqa: F811 (the fixture imported above)
    demo_tasks,  # noqa: F811
):
    project, page_task, _ = demo_tasks
    page = browser_page
    first = page_task.page.slots.order_by("position").first().item
    Item.objects.filter(pk=first.pk).update(
        text=LONG_TEXT, metadata={"url": "https://example.org/cats", "link": "javascript:alert(1)"}
    )
    others = page_task.page.slots.exclude(item=first).values_list("item_id", flat=True)
    Item.objects.filter(pk__in=list(others)).update(metadata={"url": "javascript:alert(1)"})

    log_in(page, live_server, "annotator1")
    page.goto(f"{live_server.url}/projects/{project.slug}/annotate/")
    page.wait_for_selector('#task[data-kind="grade_page"] .result')
    page.wait_for_function(ALL_IMAGES_LOADED)
    card = f'.result[data-item-id="{first.pk}"]'
    collapsed = page.eval_on_selector(f"{card} .snippet", "p => p.clientHeight")
    assert page.text_content(f"{card} .snippet") == LONG_TEXT  # the whole text is there, clamped

    # `e` shows the whole text of the focused (first) result in place, and hides it again.
    page.keyboard.press("e")
    expanded = page.eval_on_selector(f"{card} .snippet", "p => p.clientHeight")
    assert expanded > 4 * collapsed
    assert page.get_attribute(f"{card} button.expand", "aria-expanded") == "true"
    link = page.query_selector(f"{card} a.source")
    assert link.get_attribute("href") == "https://example.org/cats"
    assert "noopener" in link.get_attribute("rel") and link.get_attribute("target") == "_blank"
    assert (
        page.query_selector_all("a.source") == [link]
        or len(page.query_selector_all("a.source")) == 1
    )
    assert "javascript:" not in page.inner_html("#task")
    page.screenshot(path=SCREENSHOTS / "20-whole-text-and-source.png", full_page=True)
    page.keyboard.press("e")
    assert page.eval_on_selector(f"{card} .snippet", "p => p.clientHeight") == collapsed

    # The query stays in view when the page scrolls down to the last results.
    page.keyboard.press("e")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function("() => window.scrollY > 300")
    top = page.eval_on_selector(".task-head", "h => h.getBoundingClientRect().top")
    assert 0 <= top < 5 and page.is_visible("#query-text")
    page.screenshot(path=SCREENSHOTS / "21-sticky-query.png")
    page.keyboard.press("e")

    # `i` zooms the focused result's image (the first with one); ←/→ move, Esc closes, and
    # no arrow reaches the task underneath.
    page.keyboard.press("j")  # the second result: an image in the demo's interleaved page
    page.keyboard.press("i")
    page.wait_for_selector("#zoom:not([hidden])")
    page.wait_for_function(
        "() => { const i = document.querySelector('#zoom img'); return i.complete && i.naturalWidth > 0; }"
    )
    width = page.eval_on_selector("#zoom img", "img => img.getBoundingClientRect().width")
    thumb = page.eval_on_selector(".result .thumb img", "img => img.getBoundingClientRect().width")
    assert width > 2 * thumb
    page.screenshot(path=SCREENSHOTS / "22-image-zoom.png")
    before = page.get_attribute("#zoom img", "src")
    page.keyboard.press("ArrowRight")
    assert page.get_attribute("#zoom img", "src") != before
    page.keyboard.press("Escape")
    assert page.is_hidden("#zoom")
    assert page.eval_on_selector(".result.is-focused", "c => +c.dataset.index") == 1
    assert page.errors == []
