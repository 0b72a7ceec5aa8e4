"""Imports as jobs: the request queues an ImportRun and answers at once; the worker's run goes
queued -> running -> succeeded / failed / cancelled with its progress and problems on the run,
and still stores all or nothing. Runs on SQLite and on PostgreSQL (DATABASE_URL)."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from labeling import import_runs
from labeling.benchmarks import generated_records
from labeling.models import ImportRun, ImportStatus, Item, Query, Role

from .test_import import Q1, text_item


def lines(*records) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


@pytest.fixture
def lead_api(project, make_user):
    client = APIClient()
    client.force_authenticate(make_user("lead", role=Role.LEAD, project=project))
    return client


def post_import(client, project, data: bytes, name="data.jsonl"):
    return client.post(
        f"/api/projects/{project.slug}/import/", {"file": SimpleUploadedFile(name, data)}
    )


def test_the_request_answers_202_with_a_queued_run_and_stores_nothing_until_the_worker_runs(
    project, lead_api, django_capture_on_commit_callbacks, settings
):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = post_import(lead_api, project, lines(Q1, text_item("d1"), text_item("d2")))
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["rows_read"] == 0
    assert response["Location"] == body["url"]
    assert body["url"].endswith(f"/api/projects/{project.slug}/imports/{body['id']}/")
    run = ImportRun.objects.get(pk=body["id"])
    assert run.task_id and run.source_bytes > 0
    assert run.source_path.startswith(str(settings.PAGEWISE_IMPORT_DIR))
    assert Item.objects.count() == 0 and Query.objects.count() == 0
    assert len(queued) == 1  # the task is sent after the commit

    queued[0]()  # the worker (eager here) runs the task
    run.refresh_from_db()
    assert run.status == ImportStatus.SUCCEEDED
    assert (run.queries_created, run.items_created, run.rows_read) == (1, 2, 3)
    assert run.started_at and run.finished_at and run.stage == ""
    assert Item.objects.filter(project=project).count() == 2
    assert lead_api.get(body["url"]).json()["status"] == "succeeded"
    import_runs_dir = settings.PAGEWISE_IMPORT_DIR
    assert list(import_runs_dir.iterdir()) == []  # the upload is removed when the run ends


def test_a_refused_file_fails_the_run_with_line_and_field_and_stores_nothing(
    project, lead_api, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_import(lead_api, project, lines(Q1, text_item("d1"), text_item("d1")))
    run = ImportRun.objects.get(pk=response.json()["id"])
    assert run.status == ImportStatus.FAILED
    assert run.problems == [{"line": 3, "field": "id", "reason": "duplicate item id 'd1'"}]
    assert run.problems_total == 1 and "nothing was stored" in run.error
    assert Item.objects.count() == 0 and Query.objects.count() == 0


def test_a_line_longer_than_the_limit_is_refused_with_its_number_on_the_run(
    project, lead_api, django_capture_on_commit_callbacks, settings
):
    settings.PAGEWISE_MAX_IMPORT_LINE_BYTES = 200
    data = lines(Q1, text_item("d1", text="x" * 1000), text_item("d2"))
    with django_capture_on_commit_callbacks(execute=True):
        response = post_import(lead_api, project, data)
    run = lead_api.get(response.json()["url"]).json()
    assert run["status"] == "failed" and run["rows_read"] == 3
    assert [(p["line"], p["field"]) for p in run["problems"]] == [(2, "-")]
    assert "longer than 200 bytes" in run["problems"][0]["reason"]


def test_progress_is_written_on_the_run_while_the_file_is_checked(
    project, lead_api, django_capture_on_commit_callbacks, settings, monkeypatch
):
    settings.PAGEWISE_IMPORT_PROGRESS_ROWS = 50
    seen = []
    original = import_runs.RunProgress.rows

    def watch(self, rows_read, problems, total):
        original(self, rows_read, problems, total)
        run = ImportRun.objects.get(pk=self.run_id)  # what a poller reads at that moment
        seen.append((run.status, run.stage, run.rows_read, run.problems_total))

    monkeypatch.setattr(import_runs.RunProgress, "rows", watch)
    records = list(generated_records(items=200, items_per_query=20))
    records[120] = {**records[120], "modality": "video"}  # one bad line along the way
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    with django_capture_on_commit_callbacks(execute=True):
        post_import(lead_api, project, data)
    assert seen[:3] == [
        ("running", "checking", 50, 0),
        ("running", "checking", 100, 0),
        ("running", "checking", 150, 1),
    ]
    assert ImportRun.objects.get().status == ImportStatus.FAILED


@pytest.mark.parametrize("when", ["checking", "storing"])
def test_cancelling_a_running_import_stores_nothing(
    project, lead_api, django_capture_on_commit_callbacks, settings, monkeypatch, when
):
    """The cancel flag is read between batches of lines and of stored rows."""
    settings.PAGEWISE_IMPORT_PROGRESS_ROWS = 20
    hook = "rows" if when == "checking" else "storing"
    original = getattr(import_runs.RunProgress, hook)

    def cancel_meanwhile(self, *args):
        original(self, *args)
        # As the lead's cancel request would, from the API.
        run = ImportRun.objects.get(pk=self.run_id)
        assert (
            lead_api.post(f"/api/projects/{project.slug}/imports/{run.pk}/cancel/").status_code
            == 202
        )

    monkeypatch.setattr(import_runs.RunProgress, hook, cancel_meanwhile)
    data = "".join(json.dumps(r) + "\n" for r in generated_records(items=100)).encode()
    with django_capture_on_commit_callbacks(execute=True):
        response = post_import(lead_api, project, data)
    run = ImportRun.objects.get(pk=response.json()["id"])
    assert run.status == ImportStatus.CANCELLED and run.cancel_requested
    assert Item.objects.count() == 0 and Query.objects.count() == 0
    assert run.items_created == 0 and run.finished_at is not None


def test_a_queued_import_cancelled_before_the_worker_starts_never_runs(
    project, lead_api, django_capture_on_commit_callbacks, settings
):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = post_import(lead_api, project, lines(Q1, text_item()))
    url = response.json()["url"]
    cancelled = lead_api.post(url + "cancel/")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    assert list(settings.PAGEWISE_IMPORT_DIR.iterdir()) == []
    queued[0]()
    assert lead_api.get(url).json()["status"] == "cancelled"
    assert Item.objects.count() == 0
    again = lead_api.post(url + "cancel/")
    assert again.status_code == 202  # cancelling twice is harmless


def test_a_finished_import_cannot_be_cancelled_and_running_it_again_changes_nothing(
    project, lead_api, django_capture_on_commit_callbacks
):
    from labeling.tasks import run_import

    with django_capture_on_commit_callbacks(execute=True):
        response = post_import(lead_api, project, lines(Q1, text_item()))
    body = response.json()
    refused = lead_api.post(body["url"] + "cancel/")
    assert refused.status_code == 409
    assert "already finished (succeeded)" in refused.json()["message"]
    assert run_import(body["id"]) == "succeeded"  # a redelivered message
    assert Item.objects.count() == 1


def test_a_run_left_running_by_a_killed_worker_is_run_again(project, make_user, settings):
    """All or nothing: a run still 'running' stored nothing, so the redelivered task redoes it."""
    path = settings.PAGEWISE_IMPORT_DIR
    path.mkdir(parents=True)
    source = path / "left.jsonl"
    source.write_bytes(lines(Q1, text_item()))
    run = ImportRun.objects.create(
        project=project, filename="left.jsonl", source_path=str(source),
        status=ImportStatus.RUNNING, stage="checking", rows_read=1,
    )  # fmt: skip
    run = import_runs.execute_import(run_id=run.pk)
    assert run.status == ImportStatus.SUCCEEDED and run.items_created == 1
    assert not source.exists()


def test_a_run_whose_file_is_gone_fails_with_a_reason(project):
    run = ImportRun.objects.create(project=project, filename="x.jsonl", source_path="/nonexistent")
    run = import_runs.execute_import(run_id=run.pk)
    assert run.status == ImportStatus.FAILED and "no longer on disk" in run.error


@pytest.mark.parametrize(
    ("role", "expected"),
    [(Role.LEAD, 200), (Role.SCIENTIST, 403), (Role.ANNOTATOR, 403), (None, 404)],
)
def test_only_the_projects_lead_sees_and_cancels_its_imports(
    project, make_user, django_capture_on_commit_callbacks, role, expected
):
    lead = APIClient()
    lead.force_authenticate(make_user("lead", role=Role.LEAD, project=project))
    with django_capture_on_commit_callbacks(execute=False):
        body = post_import(lead, project, lines(Q1, text_item())).json()
    client = APIClient()
    user = make_user("someone", role=role, project=project if role else None)
    client.force_authenticate(user)
    base = f"/api/projects/{project.slug}/imports/"
    assert client.get(f"{base}{body['id']}/").status_code == expected
    assert client.get(base).status_code == expected
    cancel = client.post(f"{base}{body['id']}/cancel/")
    assert cancel.status_code == (202 if role == Role.LEAD else expected)
    upload = post_import(client, project, lines(Q1, text_item("d2")))
    assert upload.status_code == (202 if role == Role.LEAD else expected)
    # A lead of another project sees nothing of this one.
    from labeling.models import Project

    other = Project.objects.create(slug="other", name="Other", modalities=["text"])
    stranger = APIClient()
    stranger.force_authenticate(make_user("stranger", role=Role.LEAD, project=other))
    assert stranger.get(f"{base}{body['id']}/").status_code == 404
    assert stranger.get(f"/api/projects/other/imports/{body['id']}/").status_code == 404
    assert APIClient().get(f"{base}{body['id']}/").status_code in (401, 403)


def test_the_import_pages_follow_a_run_and_cancel_it(
    project, make_user, client, django_capture_on_commit_callbacks
):
    client.force_login(make_user("lead", role=Role.LEAD, project=project))
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            f"/projects/{project.slug}/import/",
            {"file": SimpleUploadedFile("page.jsonl", lines(Q1, text_item()))},
        )
    assert response.status_code == 302
    page_url = response["Location"]
    html = client.get(page_url).content.decode()
    assert "page.jsonl" in html and "queued" in html and "Cancel the import" in html
    status = client.get(page_url + "status/").json()
    assert status["status"] == "queued" and status["rows_read"] == 0
    cancelled = client.post(page_url + "cancel/", follow=True)
    assert "nothing of it will be stored" in cancelled.content.decode()
    assert client.get(page_url + "status/").json()["status"] == "cancelled"
    listing = client.get(f"/projects/{project.slug}/import/").content.decode()
    assert "page.jsonl" in listing and "cancelled" in listing


def test_an_upload_over_the_size_limit_is_refused_at_once(project, lead_api, settings):
    settings.PAGEWISE_MAX_IMPORT_BYTES = 10
    response = post_import(lead_api, project, lines(Q1, text_item()))
    assert response.status_code == 400
    assert "the limit is 10" in response.json()["message"]
    assert ImportRun.objects.count() == 0


def test_a_large_upload_is_moved_from_its_temporary_file_not_read_into_memory(
    project, make_user, settings
):
    from django.core.files.uploadedfile import TemporaryUploadedFile

    data = lines(Q1, *(text_item(f"d{i}") for i in range(50)))
    upload = TemporaryUploadedFile("big.jsonl", "application/jsonl", len(data), None)
    upload.write(data)
    upload.seek(0)
    temporary = upload.temporary_file_path()
    path, size = import_runs.save_upload(upload)
    upload.close()  # Django's handler closes it after the request; the file was moved
    assert path.read_bytes() == data and size == len(data)
    assert path.parent == settings.PAGEWISE_IMPORT_DIR
    import os

    assert not os.path.exists(temporary)


def test_a_late_failure_never_overwrites_a_run_that_succeeded(project):
    """A redelivered copy of the task that lost the race to one that stored the file."""
    run = ImportRun.objects.create(
        project=project, filename="x.jsonl", status=ImportStatus.SUCCEEDED, items_created=3
    )
    import_runs._finish(run.pk, status=ImportStatus.FAILED, error="duplicate item id")
    run.refresh_from_db()
    assert run.status == ImportStatus.SUCCEEDED and run.error == ""


def test_an_import_the_broker_cannot_take_fails_with_the_reason_instead_of_waiting_for_ever(
    project, lead_api, django_capture_on_commit_callbacks, settings, monkeypatch
):
    from config.celery import app
    from labeling.tasks import run_import

    def broker_down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    app.conf.task_always_eager = False  # the autouse fixture restores it
    monkeypatch.setattr(run_import, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_import(lead_api, project, lines(Q1, text_item()))
    assert response.status_code == 202
    run = lead_api.get(response.json()["url"]).json()
    assert run["status"] == "failed"
    assert (
        "could not be queued for a worker" in run["error"] and "Connection refused" in run["error"]
    )
    assert list(settings.PAGEWISE_IMPORT_DIR.iterdir()) == []
