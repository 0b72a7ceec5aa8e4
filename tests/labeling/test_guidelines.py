"""Guidelines: versions written by the lead, rendered safely, recorded on every judgment."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from labeling import guidelines
from labeling.errors import PagewiseError
from labeling.models import Guideline, Judgment, Role

from .task_factories import make_item, make_page_task, make_query, page_item_ids

pytestmark = pytest.mark.django_db

XSS = (
    '<script>alert("x")</script>\n\n[click](javascript:alert(1)) '
    '<img src=x onerror="alert(2)"> [ok](https://example.org/guide)\n\n'
    "![pic](data:text/html;base64,PHNjcmlwdD4=)"
)


def five(definition: str = "", examples=None) -> list[dict]:
    return [{"definition": f"{definition}{g}", "examples": examples or []} for g in range(5)]


def test_markdown_is_rendered_and_script_never_passes():
    html = guidelines.render_markdown(
        "# Title\n\n**bold** and a [link](https://example.org)\n\n" + XSS
    )
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html
    assert '<a href="https://example.org"' in html and 'rel="noopener noreferrer nofollow"' in html
    # Unsafe markup and links stay visible as text but never become tags or attributes.
    assert "<script" not in html and "<img src=x" not in html
    assert 'href="javascript' not in html and 'src="data:' not in html
    assert "&lt;script&gt;" in html  # shown as text, so the lead sees what they typed


def test_each_change_is_a_new_version_and_saving_the_same_stores_nothing(project, make_user):
    lead = make_user("lead", role=Role.LEAD, project=project)
    first, created = guidelines.save_guideline(
        project=project,
        instructions="Judge the page as a whole.",
        grades=five("d"),
        created_by=lead,
    )
    assert created and first.version == 1
    same, created = guidelines.save_guideline(
        project=project,
        instructions="Judge the page as a whole.",
        grades=five("d"),
        created_by=lead,
    )
    assert not created and same.pk == first.pk
    second, created = guidelines.save_guideline(
        project=project, instructions="Judge each item.", grades=five("d"), created_by=lead
    )
    assert created and second.version == 2
    assert guidelines.current_guideline(project=project) == second
    assert Guideline.objects.get(pk=first.pk).instructions == "Judge the page as a whole."


def test_examples_must_name_items_of_the_project_and_grades_must_cover_the_scale(project):
    query = make_query(project)
    item = make_item(project, query)
    with pytest.raises(PagewiseError) as refused:
        guidelines.save_guideline(
            project=project, instructions="", grades=five(examples=["nope"]), created_by=None
        )
    assert "no item nope" in refused.value.fields["examples_0"][0]
    with pytest.raises(PagewiseError):
        guidelines.save_guideline(project=project, instructions="", grades=[{}], created_by=None)
    with pytest.raises(PagewiseError) as refused:
        guidelines.save_guideline(
            project=project, instructions="a\x00b", grades=five(), created_by=None
        )
    assert "instructions" in refused.value.fields
    saved, _ = guidelines.save_guideline(
        project=project, instructions="", grades=five(examples=[item.external_id]), created_by=None
    )
    guide = guidelines.guideline_payload(project=project, guideline=saved)
    assert guide["grades"][0]["examples"][0]["title"] == item.title
    assert Guideline.objects.count() == 1


def test_a_judgment_records_the_guideline_version_it_was_given_under(project, make_user):
    annotator = make_user("ann", role=Role.ANNOTATOR, project=project)
    client = APIClient()
    client.force_authenticate(annotator)
    v1, _ = guidelines.save_guideline(
        project=project, instructions="v1", grades=five(), created_by=None
    )
    guidelines.save_guideline(project=project, instructions="v2", grades=five(), created_by=None)
    tasks = [make_page_task(project, items=2) for _ in range(3)]
    answers = []
    for version in (1, None, 99):
        body = client.post("/api/projects/p/tasks/next/", format="json").json()
        assert body["guideline_version"] == 2
        task = next(t for t in tasks if t.pk == body["task"]["id"])
        payload = {
            "client_uuid": str(uuid.uuid4()),
            "grades": {str(i): 1 for i in page_item_ids(task)},
            "guideline_version": version,
        }
        answers.append(client.post(f"/api/tasks/{task.pk}/submit/", payload, format="json"))
    assert answers[0].status_code == 201 and answers[0].json()["guideline_version"] == 1
    assert answers[1].status_code == 201 and answers[1].json()["guideline_version"] == 2
    assert answers[2].status_code == 400
    assert answers[2].json()["extra"]["fields"] == {"guideline_version": ["unknown version"]}
    assert sorted(Judgment.objects.values_list("guideline__version", flat=True)) == [1, 2]
    assert v1.judgments.count() == 1


def test_the_lead_saves_guidelines_from_the_page_and_annotators_read_them_escaped(
    client, project, make_user
):
    lead = make_user("lead", role=Role.LEAD, project=project)
    annotator = make_user("ann", role=Role.ANNOTATOR, project=project)
    client.force_login(lead)
    data = {"instructions": XSS, **{f"definition_{g}": f"<b>grade {g}</b>" for g in range(5)}}
    response = client.post("/projects/p/guidelines/", data)
    assert response.status_code == 302
    assert Guideline.objects.get().version == 1
    refused = client.post("/projects/p/guidelines/", {**data, "examples_2": "missing-item"})
    assert refused.status_code == 200 and "no item missing-item" in refused.content.decode()
    assert Guideline.objects.count() == 1
    client.force_login(annotator)
    for url in ("/projects/p/guidelines/", "/projects/p/annotate/"):
        html = client.get(url).content.decode()
        assert "&lt;script&gt;" in html and '<script>alert("x")' not in html
        assert "&lt;b&gt;grade 2&lt;/b&gt;" in html and "<b>grade 2</b>" not in html
        assert 'href="javascript' not in html
    assert 'id="guidelines" open' in client.get("/projects/p/annotate/").content.decode()
