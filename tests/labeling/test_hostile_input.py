"""Input built to break the parsers (damaged archives, absurd numbers, deep nesting, text no
database can hold) gets a clear refusal and stores nothing; none of it is a 500."""

from __future__ import annotations

import io
import json
import uuid
import zipfile

import pytest
from rest_framework.test import APIClient

from labeling.models import Judgment, Project, Role

from .task_factories import make_page_task, page_item_ids
from .test_import import Q1, jsonl, png, refused, text_item

pytestmark = pytest.mark.django_db


def image_item(item_id="i1", image="a.png"):
    return {"type": "item", "id": item_id, "query": "q1", "modality": "image", "image": image}


def damaged_zip(member: str, damage: str) -> io.BytesIO:
    """A zip of data.jsonl (Q1, a text item, an image item) and a.png, with `member` damaged."""
    data = {
        "data.jsonl": jsonl(Q1, text_item("d1"), image_item()).getvalue(),
        "a.png": png(),
    }
    method = zipfile.ZIP_DEFLATED if damage == "deflate" else zipfile.ZIP_STORED
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, content in data.items():
            archive.writestr(name, content)
    raw = bytearray(buffer.getvalue())
    local = raw.find(b"PK\x03\x04" + bytes(raw[4:6]), raw.find(member.encode()) - 30)
    central = raw.find(b"PK\x01\x02")
    while raw[central + 46 : central + 46 + len(member)] != member.encode():
        central = raw.find(b"PK\x01\x02", central + 4)
    start = local + 30 + len(member)  # no extra field in what zipfile writes here
    if damage == "encrypted":
        raw[local + 6] |= 1
        raw[central + 8] |= 1
    elif damage == "method":
        raw[local + 8 : local + 10] = (97).to_bytes(2, "little")
        raw[central + 10 : central + 12] = (97).to_bytes(2, "little")
    elif damage == "crc":
        raw[start + 3] ^= 0x01  # stored data: readable, but the checksum no longer matches
    elif damage == "deflate":
        raw[start : start + 6] = b"\xff" * 6
    return io.BytesIO(bytes(raw))


@pytest.mark.parametrize("damage", ["encrypted", "method", "crc", "deflate"])
@pytest.mark.parametrize("member", ["data.jsonl", "a.png"])
def test_a_damaged_archive_member_is_named_and_nothing_is_stored(project, member, damage):
    error = refused(project, damaged_zip(member, damage), filename="data.zip")
    problem = error.problems[0]
    assert member in f"{problem.field} {problem.reason}"
    assert "cannot be read" in problem.reason


def test_a_member_name_falsely_flagged_utf8_is_refused_with_a_reason(project):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.jsonl", jsonl(Q1, text_item("d1")).getvalue())
        archive.writestr("caf\u00e9.png", png())
    raw = buffer.getvalue().replace("caf\u00e9".encode(), b"caf\xe9\xff")  # same length, not UTF-8
    error = refused(project, io.BytesIO(raw), filename="data.zip")
    assert "not valid UTF-8" in error.problems[0].reason


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        ('{"type": "item", "id": "d1", "query": "q1", "modality": "text", "title": "t", '
         '"upstream_score": 1' + "0" * 400 + "}", "upstream_score", "finite"),
        ('{"type": "item", "id": "d1", "query": "q1", "upstream_score": 1' + "0" * 5000 + "}",
         "-", "malformed JSON"),
        ('{"type": "item", "id": "d1", "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}",
         "-", "nested too deeply"),
        (json.dumps(text_item(modality=["text"])), "modality", "must be a string, not list"),
        (json.dumps(text_item(title="A cat\ud800")), "title", "lone UTF-16 surrogate"),
        (json.dumps(text_item(metadata={"tags": ["ok", "\ud800"]})), "metadata.tags[1]",
         "surrogate"),
        (json.dumps(text_item(metadata={"\ud800": 1})), "metadata", "has a key that"),
        (json.dumps(text_item(text="a\x00b")), "text", "NUL character"),
        (json.dumps(text_item(metadata=json.loads('{"a":' * 40 + "1" + "}" * 40))),
         "metadata." + ".".join(["a"] * 31), "nested deeper than 32 levels"),
    ],
)  # fmt: skip
def test_a_hostile_line_is_refused_with_line_and_field(project, line, field, reason):
    error = refused(project, jsonl(Q1, line))
    assert [(p.line, p.field) for p in error.problems] == [(2, field)]
    assert reason in error.problems[0].reason


def test_a_gold_grade_on_an_existing_train_query_is_refused(project):
    from labeling.imports import import_project_file

    import_project_file(project=project, file=jsonl(Q1, text_item("d1")))
    error = refused(project, jsonl(text_item("d2", gold_grade=2)))
    assert [(p.line, p.field, p.reason) for p in error.problems] == [
        (1, "gold_grade", "only items of gold queries carry a gold grade")
    ]


def test_the_import_api_names_a_damaged_member(
    project, make_user, django_capture_on_commit_callbacks
):
    client = APIClient()
    client.force_authenticate(make_user("lead", role=Role.LEAD, project=project))
    upload = damaged_zip("data.jsonl", "crc")
    upload.name = "data.zip"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/projects/{project.slug}/import/", {"file": upload})
    assert response.status_code == 202, response.content
    run = client.get(response.json()["url"]).json()
    assert run["status"] == "failed"
    assert "cannot be read" in run["problems"][0]["reason"]


@pytest.fixture
def annotator_client(project, make_user):
    client = APIClient()
    client.force_authenticate(make_user("ann", role=Role.ANNOTATOR, project=project))
    return client


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"client_uuid": "\\ud800", "grades": {}}', "client_uuid contains a lone UTF-16"),
    ],
)
def test_an_unusable_json_body_is_a_400_and_judges_nothing(
    project, annotator_client, body, message
):
    task = make_page_task(project)
    response = annotator_client.post(
        f"/api/tasks/{task.pk}/submit/", data=body, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert message in response.json()["message"]
    assert not Judgment.objects.exists()


def test_only_ascii_digits_name_an_item_in_grades(project, annotator_client):
    task = make_page_task(project, items=1)
    (item_id,) = page_item_ids(task)
    assert annotator_client.post(f"/api/projects/{project.slug}/tasks/next/").status_code == 200
    lookalike = "".join(chr(0x0660 + int(d)) for d in str(item_id))  # Arabic-Indic digits
    response = annotator_client.post(
        f"/api/tasks/{task.pk}/submit/",
        {"client_uuid": str(uuid.uuid4()), "grades": {lookalike: 1}},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert not Judgment.objects.exists()


def test_a_label_cost_a_judgment_could_not_hold_is_refused(project, make_user):
    client = APIClient()
    client.force_authenticate(make_user("lead", role=Role.LEAD, project=project))
    for field in ("grade_cost", "compare_cost"):
        response = client.patch(
            f"/api/projects/{project.slug}/settings/", {field: "999999.9999"}, format="json"
        )
        assert response.status_code == 400, response.content
        assert field in response.json()["extra"]["fields"]
    project.refresh_from_db()
    assert project.grade_cost == Project._meta.get_field("grade_cost").default


def test_a_media_path_too_long_for_the_file_system_is_a_404(client, make_user, project):
    client.force_login(make_user("lead", role=Role.LEAD, project=project))
    assert client.get("/media/" + "x" * 5000).status_code == 404


def test_a_grade_key_longer_than_any_item_id_is_not_an_item_id(project, annotator_client):
    task = make_page_task(project, items=1)
    assert annotator_client.post(f"/api/projects/{project.slug}/tasks/next/").status_code == 200
    response = annotator_client.post(
        f"/api/tasks/{task.pk}/submit/",
        {"client_uuid": str(uuid.uuid4()), "grades": {"9" * 4301: 1}},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert not Judgment.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("grade_names", ["Not relevant", "\ud800"], "surrogate"),
        ("training_settings", {"beta": "\x00"}, "NUL"),
        ("training_settings", json.loads('{"a":' * 40 + "1" + "}" * 40), "nested deeper"),
    ],
)
def test_the_admin_cannot_store_json_a_page_could_not_show(project, field, value, reason):
    from django.core.exceptions import ValidationError

    setattr(project, field, value)
    with pytest.raises(ValidationError) as error:
        project.full_clean()
    assert reason in str(error.value.message_dict[field])


@pytest.mark.parametrize(
    ("method", "url", "data"),
    [
        ("get", "/admin/labeling/project/?created_at__year=99999", None),
        ("post", "/admin/labeling/project/",
         {"action": "delete_selected", "_selected_action": "abc", "index": "0"}),
    ],
)  # fmt: skip
def test_parameters_django_admin_cannot_use_are_a_400(client, project, method, url, data):
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_superuser("root", password="pw-for-tests-1")
    client.force_login(admin)
    response = getattr(client, method)(url, data) if data else getattr(client, method)(url)
    assert response.status_code == 400
    assert Project.objects.filter(pk=project.pk).exists()


def test_errors_outside_the_admin_are_not_turned_into_400s(rf):
    from config.middleware import AdminBadParametersMiddleware

    middleware = AdminBadParametersMiddleware(lambda request: None)
    assert middleware.process_exception(rf.get("/api/projects/"), ValueError("bug")) is None
    assert middleware.process_exception(rf.get("/admin/x/"), TypeError("bug")) is None
    assert middleware.process_exception(rf.get("/admin/x/"), ValueError("bad")).status_code == 400
