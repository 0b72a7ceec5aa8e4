"""An annotator judges a page and a comparison in a real Chromium, with the keyboard only.

Drives Debian's Chromium (never a downloaded browser) through Playwright against the live server
with the demo project and its real photographs. Screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from labeling.models import (
    CandidatePage,
    CompareOutcome,
    Item,
    Judgment,
    PageSlot,
    Project,
    Task,
    TaskKind,
    TaskSkip,
    TaskStatus,
)

from .chromium import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ALL_IMAGES_LOADED = (
    "() => Array.from(document.images).length > 0 && "
    "Array.from(document.images).every(img => img.complete && img.naturalWidth > 0)"
)


@pytest.fixture
def browser_page(chromium):
    """A signed-out page of the shared Chromium that collects page and console errors."""
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("console", lambda msg: page.errors.append(msg.text) if msg.type == "error" else None)
    try:
        yield page
    finally:
        context.close()


def build_page_task(project: Project) -> Task:
    """A page of the top three text and image items of the first query that has both."""
    for query in project.queries.filter(split="train").order_by("external_id"):
        text = list(query.items.filter(modality="text").order_by("upstream_rank")[:3])
        images = list(query.items.filter(modality="image").exclude(image="")[:3])
        if text and images:
            page = CandidatePage.objects.create(project=project, query=query)
            interleaved = [item for pair in zip(text, images, strict=False) for item in pair]
            PageSlot.objects.bulk_create(
                [PageSlot(page=page, position=i, item=item) for i, item in enumerate(interleaved)]
            )
            return Task.objects.create(
                project=project, kind=TaskKind.GRADE_PAGE, page=page,
                reason="Top band of each modality",
            )  # fmt: skip
    raise AssertionError("the demo has no query with text and image items")


@pytest.fixture
def demo_tasks():
    """The demo project with one page to grade first, then one comparison, then the rest."""
    call_command("load_demo", stdout=io.StringIO())
    project = Project.objects.get(slug="demo")
    # load_demo plans the candidate pages (active_selection.create_page_tasks); build one if not.
    with_images = Task.objects.filter(
        project=project, kind=TaskKind.GRADE_PAGE, page__slots__item__modality="image"
    ).distinct()
    page_task = with_images.order_by("id").first() or build_page_task(project)
    Task.objects.filter(project=project).update(priority=0)
    Task.objects.filter(pk=page_task.pk).update(priority=1_000_000)
    query = page_task.page.query
    anchor = Item.objects.filter(query=query, modality="text").order_by("upstream_rank").first()
    other = Item.objects.filter(query=query, modality="image").exclude(image="").last()
    compare_task = Task.objects.create(
        project=project, kind=TaskKind.COMPARE, anchor=anchor, other=other,
        priority=999_999, reason="Binary search: image boundary for grade 'Relevant'",
    )  # fmt: skip
    return project, page_task, compare_task


def test_annotator_grades_a_page_and_answers_a_comparison_with_the_keyboard(
    live_server, browser_page, demo_tasks
):
    project, page_task, compare_task = demo_tasks
    page = browser_page

    # Log in, see the project with a Start button.
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "annotator1")
    page.fill("input[name=password]", "pagewise-annotator1")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")
    page.screenshot(path=SCREENSHOTS / "01-home.png", full_page=True)
    page.get_by_role("link", name="Start").click()

    # The page to grade looks like a result page: query on top, items as cards in page order.
    page.wait_for_selector('#task[data-kind="grade_page"] .result')
    page.wait_for_function(ALL_IMAGES_LOADED)
    shown = page.eval_on_selector_all(".result", "cards => cards.map(c => +c.dataset.itemId)")
    in_page_order = list(
        page_task.page.slots.order_by("position").values_list("item_id", flat=True)
    )
    assert shown == in_page_order
    assert page.text_content("#query-text") == page_task.page.query.text
    assert page.query_selector(".why") is None  # why a task was chosen is for leads
    page.screenshot(path=SCREENSHOTS / "02-grade-page-start.png", full_page=True)

    n = len(shown)
    target = [(3 * i + 2) % 5 for i in range(n)]  # a spread of grades 0..4
    keys = ["4", "k", "1", "u", "u"]  # grade, back, regrade, undo twice: the first item is ungraded
    keys += [str(target[0]), str(target[1]), "k", "k", "j", "j"]  # wander back and forth
    for key in keys:
        page.keyboard.press(key)
    assert page.get_attribute(f'.result[data-item-id="{shown[0]}"]', "data-grade") == str(target[0])
    page.keyboard.press("Enter")  # not every item is graded yet: nothing is sent
    page.wait_for_selector("#notice:not([hidden])")
    assert Judgment.objects.count() == 0
    focused = page.eval_on_selector(".result.is-focused", "card => +card.dataset.index")
    assert focused == 2
    for grade in target[2:]:
        page.keyboard.press(str(grade))
    assert (
        page.eval_on_selector_all(".result", "cards => cards.map(c => +c.dataset.grade)") == target
    )
    page.screenshot(path=SCREENSHOTS / "03-grade-page-graded.png", full_page=True)
    page.keyboard.press("Enter")

    # The comparison appears without a page reload.
    page.wait_for_selector(f'#task[data-kind="compare"][data-task-id="{compare_task.pk}"]')
    page.wait_for_function(ALL_IMAGES_LOADED)
    judgment = Judgment.objects.get(task=page_task)
    assert dict(judgment.grades.values_list("item_id", "grade")) == dict(
        zip(shown, target, strict=True)
    )
    assert judgment.cost == project.grade_cost * n and judgment.annotator.username == "annotator1"
    assert Task.objects.get(pk=page_task.pk).status == TaskStatus.DONE
    left = int(page.get_attribute(".side-left", "data-item-id"))
    page.screenshot(path=SCREENSHOTS / "04-compare.png", full_page=True)
    # The first answer reaches the server but its response is lost: the page retries it.
    sent = []

    def lose_first_response(route):
        sent.append(route.request.post_data_json)
        if len(sent) == 1:
            route.fetch()
            route.abort()
        else:
            route.continue_()

    page.route(f"**/api/tasks/{compare_task.pk}/submit/", lose_first_response)
    page.keyboard.press("ArrowLeft")  # picks the left side; Enter stores it
    page.keyboard.press("Enter")

    page.wait_for_function(
        f"() => document.getElementById('task').dataset.taskId !== '{compare_task.pk}'"
    )
    assert len(sent) == 2 and sent[0]["client_uuid"] == sent[1]["client_uuid"]
    compared = Judgment.objects.get(task=compare_task)  # stored once
    assert compared.outcome == (
        CompareOutcome.ANCHOR_BETTER
        if left == compare_task.anchor_id
        else CompareOutcome.OTHER_BETTER
    )
    assert compared.cost == project.compare_cost
    progress = page.text_content("#progress-text")
    assert "2 judged today" in progress
    page.screenshot(path=SCREENSHOTS / "05-next.png", full_page=True)

    # Skip the next task with `s`; with no other work left the empty state explains why.
    current = int(page.get_attribute("#task", "data-task-id"))
    Task.objects.filter(project=project).exclude(pk=current).update(
        status=TaskStatus.DONE, assignee=None, lease_expires_at=None
    )
    page.keyboard.press("s")
    page.wait_for_selector("#empty-state")
    assert "No tasks right now" in page.text_content("#empty-state")
    assert TaskSkip.objects.filter(task_id=current, annotator__username="annotator1").exists()
    assert Task.objects.get(pk=current).status == TaskStatus.OPEN
    page.screenshot(path=SCREENSHOTS / "06-empty.png", full_page=True)
    # The lost response above is the only failed request the page may have logged.
    assert [e for e in page.errors if "ERR_FAILED" not in e] == []


def test_compare_task_is_blind_for_the_annotator_while_the_lead_sees_why(
    live_server, browser_page, demo_tasks
):
    project, page_task, compare_task = demo_tasks
    Task.objects.filter(pk=page_task.pk).update(status=TaskStatus.DONE)
    reason = "Search probe against anchor “Long exposure photography” (grade 3)"
    Task.objects.filter(pk=compare_task.pk).update(reason=reason)
    page = browser_page

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "annotator1")
    page.fill("input[name=password]", "pagewise-annotator1")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/projects/{project.slug}/annotate/")
    page.wait_for_selector(f'#task[data-kind="compare"][data-task-id="{compare_task.pk}"]')
    shown = page.text_content("#task").lower()
    for leak in ("anchor", "grade", "search", "probe", "why this task", "long exposure"):
        assert leak not in shown, leak
    assert page.query_selector(".why") is None
    page.screenshot(path=SCREENSHOTS / "07-compare-blind.png", full_page=True)

    page.context.clear_cookies()  # log out
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "lead")
    page.fill("input[name=password]", "pagewise-lead")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/projects/{project.slug}/dashboard/")
    page.wait_for_selector("#open-tasks")
    assert reason in page.text_content("#open-tasks")
    page.screenshot(path=SCREENSHOTS / "08-lead-open-tasks.png", full_page=True)
