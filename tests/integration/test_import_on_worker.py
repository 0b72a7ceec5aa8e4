"""Imports as jobs end to end: the API answers at once and a real Celery worker over Redis checks
and stores the file in PostgreSQL while an annotator keeps judging; a cancel sent to the
running import leaves nothing stored."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from labeling.benchmarks import generated_records
from labeling.models import ImportRun, Item, Judgment, Project, Role

from ..labeling.task_factories import make_page_task, page_item_ids
from .conftest import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ITEMS = 4000


def generated_file(items: int, prefix: str = "") -> bytes:
    lines = []
    for record in generated_records(items=items):
        record = dict(record)
        record["id"] = prefix + record["id"]
        if record["type"] == "item":
            record["query"] = prefix + record["query"]
        lines.append(json.dumps(record))
    return ("\n".join(lines) + "\n").encode()


def as_user(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_large_import_runs_on_the_worker_while_an_annotator_judges(
    celery_workers, make_user, settings
):
    celery_workers.start(extra_env={"PAGEWISE_EMBED_AFTER_IMPORT": "0"})
    project = Project.objects.create(slug="big", name="Big", modalities=["text", "image"])
    lead = as_user(make_user("lead", role=Role.LEAD, project=project))
    annotator = as_user(make_user("ann", role=Role.ANNOTATOR, project=project))
    tasks = [make_page_task(project) for _ in range(8)]
    data = generated_file(ITEMS, prefix="gen-")  # apart from the tasks' own queries
    # The process's first request loads the URL conf and the views: not the import's cost.
    assert lead.get(f"/api/projects/{project.slug}/imports/").status_code == 200

    started = time.perf_counter()
    response = lead.post(
        f"/api/projects/{project.slug}/import/", {"file": SimpleUploadedFile("big.jsonl", data)}
    )
    answered = time.perf_counter() - started
    assert response.status_code == 202, response.content
    print(f"import request answered in {answered * 1000:.0f} ms ({len(data)} bytes)")
    assert answered < 5  # generous on a loaded machine; the work is the worker's

    # Meanwhile the annotator judges every task.
    judged = 0
    for _ in tasks:
        task = annotator.post(f"/api/projects/{project.slug}/tasks/next/", format="json").json()[
            "task"
        ]
        body = {
            "client_uuid": str(uuid.uuid4()),
            "grades": {str(i): 2 for i in page_item_ids(project.tasks.get(pk=task["id"]))},
            "duration_ms": 1500,
        }
        submitted = annotator.post(f"/api/tasks/{task['id']}/submit/", body, format="json")
        assert submitted.status_code in (200, 201), submitted.content
        judged += 1

    url = response.json()["url"]
    run = wait_for(
        lambda: (r := lead.get(url).json())["status"] not in ("queued", "running") and r,
        timeout=240,
        what="the worker to finish the import",
    )
    assert run["status"] == "succeeded", (run["error"], run["problems"][:3])
    assert run["items_created"] == ITEMS and run["rows_read"] == ITEMS + ITEMS // 40
    assert Item.objects.filter(project=project, external_id__startswith="gen-").count() == ITEMS
    assert Judgment.objects.filter(task__project=project).count() == judged == len(tasks)
    stored = ImportRun.objects.get(pk=run["id"])
    print(
        f"worker: {ITEMS} items in {(stored.finished_at - stored.started_at).total_seconds():.1f} s"
    )


def test_cancelling_an_import_running_on_the_worker_stores_nothing(celery_workers, make_user):
    celery_workers.start(
        extra_env={"PAGEWISE_EMBED_AFTER_IMPORT": "0", "PAGEWISE_IMPORT_PROGRESS_ROWS": "200"}
    )
    project = Project.objects.create(slug="cancel", name="Cancel", modalities=["text", "image"])
    lead = as_user(make_user("lead", role=Role.LEAD, project=project))
    data = generated_file(30_000)
    response = lead.post(
        f"/api/projects/{project.slug}/import/", {"file": SimpleUploadedFile("c.jsonl", data)}
    )
    url = response.json()["url"]
    wait_for(lambda: lead.get(url).json()["rows_read"] > 0, timeout=120, what="the import to start")
    cancel = lead.post(url + "cancel/")
    assert cancel.status_code == 202, cancel.content
    run = wait_for(
        lambda: (r := lead.get(url).json())["status"] not in ("queued", "running") and r,
        timeout=120,
        what="the worker to stop",
    )
    assert run["status"] == "cancelled", run
    assert 0 < run["rows_read"] < 30_000 + 750
    assert not Item.objects.filter(project=project).exists()
    assert not project.queries.exists()
