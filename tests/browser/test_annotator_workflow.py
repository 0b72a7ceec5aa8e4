"""Around the judging itself, in a real Chromium: the lead writes guidelines, the annotator reads
them beside the task, undoes a submit, revises an answer from their history and takes back a
skip, all with the keyboard. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import pytest

from labeling.models import Guideline, Judgment, Task, TaskSkip, TaskStatus

from .chromium import SCREENSHOTS
from .test_annotator import ALL_IMAGES_LOADED, browser_page, demo_tasks  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", f"pagewise-{username}")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")


def test_guidelines_undo_history_revision_and_skips_with_the_keyboard(
    live_server,
    browser_page,  # noqa: F811 (the fixture imported above)
    demo_tasks,  # noqa: F811
):
    project, page_task, compare_task = demo_tasks
    page = browser_page
    example = page_task.page.slots.order_by("position").first().item

    # The lead writes the guidelines in the UI; markup they type is shown, never run.
    log_in(page, live_server, "lead")
    page.goto(f"{live_server.url}/projects/{project.slug}/guidelines/")
    page.fill(
        "#instructions",
        "## How to judge\n\nJudge each result **for the query as typed**. "
        "See [the style guide](https://example.org/guide).\n\n<script>window.pwned = 1</script>",
    )
    definitions = [
        "Off topic.",
        "Mentions the topic only.",
        "Useful.",
        "Very useful.",
        "Exactly it.",
    ]
    for grade, text in enumerate(definitions):
        page.fill(f"#definition_{grade}", text)
    page.fill("#examples_4", example.external_id)
    page.click("#guideline-form button[type=submit]")
    page.wait_for_selector("text=Guidelines saved as version 1")
    page.screenshot(path=SCREENSHOTS / "10-guidelines-lead.png", full_page=True)
    assert Guideline.objects.get(project=project).version == 1
    page.click("button:has-text('Log out')")

    # First entry: the guidelines are open beside the task; `?` hides and shows them.
    log_in(page, live_server, "annotator1")
    page.goto(f"{live_server.url}/projects/{project.slug}/annotate/")
    page.wait_for_selector('#task[data-kind="grade_page"] .result')
    page.wait_for_function(ALL_IMAGES_LOADED)
    assert page.is_visible("#guidelines .guide-instructions h2")
    assert "Exactly it." in page.text_content("#guidelines")
    assert example.title in page.text_content("#guidelines .guide-examples")
    assert page.evaluate("window.pwned") is None
    page.screenshot(path=SCREENSHOTS / "11-annotate-guidelines-first-entry.png", full_page=True)
    page.keyboard.press("?")
    assert not page.is_visible("#guidelines .guide-instructions")
    page.keyboard.press("?")
    assert page.is_visible("#guidelines .guide-instructions")

    # Grade the page and store it with Enter; the toast offers an undo.
    n = page_task.page.slots.count()
    for _ in range(n):
        page.keyboard.press("1")
    page.keyboard.press("Enter")
    page.wait_for_selector(f'#task[data-task-id="{compare_task.pk}"]')
    page.wait_for_selector("#toast:not([hidden])")
    first = Judgment.objects.get(task=page_task)
    assert first.guideline.version == 1
    page.screenshot(path=SCREENSHOTS / "12-undo-toast.png", full_page=True)

    # `z` reopens it with the grades filled in; changing one and Enter stores a revision.
    page.keyboard.press("z")
    page.wait_for_selector(f'#task.is-revising[data-task-id="{page_task.pk}"]')
    grades = page.eval_on_selector_all(".result", "cards => cards.map(c => c.dataset.grade)")
    assert grades == ["1"] * n
    page.keyboard.press("4")  # focus is on the first result
    page.screenshot(path=SCREENSHOTS / "13-revising.png", full_page=True)
    page.keyboard.press("Enter")
    page.wait_for_selector(f'#task[data-task-id="{compare_task.pk}"]')
    revision = Judgment.objects.get(supersedes=first)
    assert sorted(revision.grades.values_list("grade", flat=True)) == sorted([4] + [1] * (n - 1))
    assert Judgment.objects.filter(task=page_task).count() == 2  # append-only

    # A comparison: arrows only pick a side, Enter stores it (one meaning per key).
    page.keyboard.press("ArrowRight")
    assert page.get_attribute('button.choice[data-choice="right"]', "aria-pressed") == "true"
    assert not Judgment.objects.filter(task=compare_task).exists()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Enter")
    page.wait_for_function(
        f"() => document.getElementById('task').dataset.taskId !== '{compare_task.pk}'"
    )
    compared = Judgment.objects.get(task=compare_task)

    # Skip the next task; the history lists it and takes the skip back.
    skipped = int(page.get_attribute("#task", "data-task-id"))
    page.keyboard.press("s")
    page.wait_for_function(f"() => document.getElementById('task').dataset.taskId !== '{skipped}'")
    assert TaskSkip.objects.filter(task_id=skipped).exists()
    page.goto(f"{live_server.url}/projects/{project.slug}/my-judgments/")
    rows = page.eval_on_selector_all(".history-row", "rows => rows.map(r => +r.dataset.judgmentId)")
    assert rows == [compared.pk, revision.pk]  # newest first, the revised answer once
    assert "revised 1×" in page.text_content(f'.history-row[data-judgment-id="{revision.pk}"]')
    assert "chosen" in page.text_content(f'.history-row[data-judgment-id="{compared.pk}"]')
    page.screenshot(path=SCREENSHOTS / "14-my-judgments.png", full_page=True)
    page.focus(f'#skips form[action$="/{skipped}/take-back/"] button')
    page.keyboard.press("Enter")
    page.wait_for_selector("text=taken back")
    assert not TaskSkip.objects.filter(task_id=skipped).exists()

    # Revise the comparison from the history, keyboard only: the other side this time.
    page.focus(f'.history-row[data-judgment-id="{compared.pk}"] a.revise')
    page.keyboard.press("Enter")
    page.wait_for_selector(f'#task.is-revising[data-task-id="{compare_task.pk}"]')
    chosen = page.get_attribute('button.choice[aria-pressed="true"]', "data-choice")
    page.keyboard.press("ArrowRight" if chosen == "left" else "ArrowLeft")
    page.keyboard.press("Enter")
    page.wait_for_selector("#toast:not([hidden])")
    flipped = Judgment.objects.get(supersedes=compared)
    assert {compared.outcome, flipped.outcome} == {"anchor_better", "other_better"}
    assert "revise=" not in page.url
    assert Task.objects.get(pk=compare_task.pk).status == TaskStatus.DONE
    assert page.errors == []
