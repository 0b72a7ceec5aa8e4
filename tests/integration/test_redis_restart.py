"""Redis restarted while judgments are submitted: every judgment is stored, and the follow-up work
whose message was lost is recovered by the periodic sweep once Redis is back."""

import os
import shutil
import socket
import subprocess
import sys
import time
from decimal import Decimal

import pytest

from active_selection import services as selection
from active_selection.models import AnchorSearch
from active_selection.simulator import store_world
from labeling.models import Judgment, Membership, Project, Task, TaskKind
from ranking.ml.synthetic import WorldConfig, make_world

from .conftest import ROOT, database_url_of_test_db, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

SUBMITTER = """
import sys, time, uuid
from django.contrib.auth import get_user_model
from labeling.assignment import claim_next_task, submit_judgment
from labeling.models import Project
project = Project.objects.get(slug="restart")
annotator = get_user_model().objects.get(username="restart-annotator")
while (task := claim_next_task(annotator=annotator, project=project)) is not None:
    if task.page_id is None:
        break  # comparisons have begun: every page is graded
    grades = {slot.item_id: 1 for slot in task.page.slots.all()}
    submit_judgment(task=task, annotator=annotator, client_uuid=uuid.uuid4(), grades=grades, duration_ms=900)
    print("submitted", task.pk, flush=True)
    time.sleep(0.4)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(port: int, tmp_path) -> subprocess.Popen:
    server = subprocess.Popen(
        [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)


def test_judgments_survive_a_redis_restart_and_the_sweep_recovers_lost_follow_up(
    celery_workers, tmp_path, make_user
):
    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    redis = start_redis(port, tmp_path)
    project = Project.objects.create(
        slug="restart", name="Restart", modalities=["text", "image"], page_size=6, top_band=3,
        budget=Decimal("1000"), retrain_threshold=10**6,
    )  # fmt: skip
    store_world(
        project=project,
        world=make_world(
            WorldConfig(n_queries=12, items_per_query=12, modality_shares=(0.5, 0.5), seed=2)
        ),
        gold_queries=0,
    )
    pages = selection.create_page_tasks(project=project)
    user = make_user("restart-annotator")
    Membership.objects.create(project=project, user=user, role="annotator")
    celery_workers.start(
        extra_env={"CELERY_BROKER_URL": broker, "PAGEWISE_SWEEP_SECONDS": "3"}, beat=True
    )

    env = {**os.environ, "DATABASE_URL": database_url_of_test_db(), "CELERY_BROKER_URL": broker,
           "CELERY_TASK_DEFAULT_QUEUE": celery_workers.queue}  # fmt: skip
    submitter = subprocess.Popen(
        [sys.executable, "manage.py", "shell", "-c", SUBMITTER], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_for(
        lambda: Judgment.objects.filter(project=project).count() >= 3, what="the first judgments"
    )
    redis.terminate()  # Redis goes away while judgments keep coming
    redis.wait(timeout=10)
    wait_for(
        lambda: Judgment.objects.filter(project=project).count() >= 6,
        what="judgments while Redis is down",
    )
    redis = start_redis(port, tmp_path)
    try:
        output = submitter.communicate(timeout=120)[0].decode()
        assert submitter.returncode == 0, output
        assert output.count("submitted") == pages
        assert Judgment.objects.filter(project=project).count() == pages, "every judgment is stored"
        assert (
            not Task.objects.filter(project=project, kind=TaskKind.GRADE_PAGE)
            .exclude(status="done")
            .exists()
        )
        # Every graded page's searches start: directly, or through the sweep for lost messages.
        wait_for(
            lambda: (
                AnchorSearch.objects.filter(project=project).values("query").distinct().count()
                == pages
            ),
            timeout=90,
            what="the follow-up work of every judgment",
        )
    finally:
        redis.terminate()
        redis.wait(timeout=10)
