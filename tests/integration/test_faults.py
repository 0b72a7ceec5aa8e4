"""Faults on the real services: a worker killed mid-training, a database connection lost mid-import."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection

from active_selection import services as selection
from active_selection.simulator import SimulatedAnnotator, answer_task, store_world
from labeling.models import Item, Project, Query, Task, TaskKind
from ranking.ml.model import WholePageReranker
from ranking.ml.synthetic import WorldConfig, make_world
from ranking.models import RerankerVersion
from ranking.tasks import retrain_reranker

from .conftest import ROOT, database_url_of_test_db, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def graded_project() -> Project:
    project = Project.objects.create(
        slug="faults", name="Faults", modalities=["text", "image"], strategy="full", page_size=16,
        budget=Decimal("10000"),
        # Long enough to be killed in the middle of it.
        training_settings={"epochs": 150, "patience": 150, "hidden": 32, "layers": 1, "heads": 2},
    )  # fmt: skip
    world = make_world(
        WorldConfig(n_queries=16, items_per_query=16, modality_shares=(0.5, 0.5), seed=9)
    )
    truth = store_world(project=project, world=world, gold_queries=4)
    selection.create_page_tasks(project=project)
    oracle = SimulatedAnnotator(truth, project.max_grade, grade_noise=0.0, compare_noise=0.0)
    from django.contrib.auth import get_user_model

    annotator = get_user_model().objects.create_user("fault-annotator")
    for task in Task.objects.filter(project=project, kind=TaskKind.GRADE_PAGE):
        answer_task(task=task, annotator_user=annotator, oracle=oracle)
    return project


def test_worker_killed_during_retraining_runs_the_task_again_and_never_leaves_a_broken_model(
    celery_workers, settings
):
    project = graded_project()
    first = celery_workers.start(visibility_timeout=3)
    retrain_reranker.apply_async(args=[project.pk], queue=celery_workers.queue)
    wait_for(
        lambda: RerankerVersion.objects.filter(
            project=project, status=RerankerVersion.Status.TRAINING
        ).exists(),
        what="training to start",
    )
    time.sleep(1.0)  # well inside the epochs
    celery_workers.kill(first)
    assert not RerankerVersion.objects.filter(
        project=project, status=RerankerVersion.Status.ACTIVE
    ).exists()

    celery_workers.start(visibility_timeout=3)  # late acknowledgement: the message comes back
    version = wait_for(
        lambda: RerankerVersion.objects.filter(
            project=project, status=RerankerVersion.Status.ACTIVE
        ).first(),
        timeout=150,
        what="the task to run again on the second worker and activate a version",
    )
    assert RerankerVersion.objects.filter(project=project).count() == 1, (
        "the redelivered task took over its row"
    )
    model = WholePageReranker.load(version.weights_path)  # a complete, loadable file
    assert model.config.n_grades == 5
    # The workers write the weights under the test's MEDIA_ROOT (start_worker passes it on).
    assert Path(version.weights_path).is_relative_to(settings.MEDIA_ROOT)
    assert not list((Path(settings.MEDIA_ROOT) / "rerankers").glob("**/.v*.tmp"))


def test_database_connection_lost_during_import_stores_nothing(transactional_db, tmp_path):
    project = Project.objects.create(
        slug="lost", name="Lost connection", modalities=["text", "image"]
    )
    path = tmp_path / "big.jsonl"
    with open(path, "w") as handle:
        for q in range(1000):
            handle.write(json.dumps({"type": "query", "id": f"q{q}", "text": f"query {q}"}) + "\n")
            for i in range(40):
                handle.write(json.dumps({"type": "item", "id": f"q{q}-{i}", "query": f"q{q}", "modality": "text",
                                         "title": f"item {i}", "upstream_score": float(i)}) + "\n")  # fmt: skip
    env = {
        "DATABASE_URL": database_url_of_test_db(),
        "PAGEWISE_EMBED_AFTER_IMPORT": "0",
        "PATH": "/usr/bin:/bin",
    }
    importer = subprocess.Popen(
        [sys.executable, "manage.py", "import_project", "lost", str(path)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip

    def importer_backend_writing():
        # A transaction id is given at a transaction's first write: the importer is inside its
        # write transaction (queries, then the items by COPY), which commits all or nothing.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
            )
            row = cursor.fetchone()
        return row[0] if row else None

    pid = wait_for(
        importer_backend_writing, timeout=60, every=0.01, what="the import to be writing"
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    output = importer.communicate(timeout=60)[0].decode()
    assert importer.returncode != 0, output
    assert Query.objects.filter(project=project).count() == 0
    assert Item.objects.filter(project=project).count() == 0
