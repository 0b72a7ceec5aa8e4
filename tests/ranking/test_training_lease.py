"""A training run holds a lease on its version row (a heartbeat every epoch); the sweep takes
over a version whose heartbeat stopped, in minutes, and says so on the version and dashboard."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from active_selection.sweep import sweep_project
from ranking import services
from ranking.ml.synthetic import WorldConfig, make_world
from ranking.models import RerankerVersion

from .test_services import grade_every_item

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_graded(project, make_user, settings):
    settings.PAGEWISE_TRAINING_STALL_SECONDS = 120
    world = make_world(
        WorldConfig(n_queries=8, items_per_query=8, modality_shares=(0.5, 0.5), seed=2)
    )
    training = {"epochs": 2, "hidden": 8, "layers": 1, "heads": 1, "patience": 2}
    grade_every_item(project, make_user("sim"), world, gold_queries=2, training_settings=training)
    project.retrain_threshold = 1
    project.save()
    return project


def _stuck_version(project, *, seconds_since_heartbeat: float) -> RerankerVersion:
    beat = timezone.now() - timedelta(seconds=seconds_since_heartbeat)
    version = RerankerVersion.objects.create(
        project=project, number=1, celery_task_id="dead-worker", heartbeat_at=beat
    )
    RerankerVersion.objects.filter(pk=version.pk).update(created_at=beat)
    return version


def test_training_renews_its_heartbeat_every_epoch(small_graded):
    beats = []
    original = services.heartbeat
    services.heartbeat = lambda version: (beats.append(version.pk), original(version))
    try:
        version = services.train_version(project=small_graded, seed=0)
    finally:
        services.heartbeat = original
    assert len(beats) == version.training["epochs_run"] >= 1  # one heartbeat every epoch
    version.refresh_from_db()
    assert version.heartbeat_at > version.created_at


def test_the_sweep_takes_over_a_version_whose_heartbeat_stopped(
    small_graded, django_capture_on_commit_callbacks, client, make_user
):
    stuck = _stuck_version(small_graded, seconds_since_heartbeat=121)
    with django_capture_on_commit_callbacks(execute=True):
        sweep_project(project=small_graded)
    stuck.refresh_from_db()
    assert stuck.status == RerankerVersion.Status.FAILED
    assert stuck.message.startswith("training stalled") and "restarted at" in stuck.message
    retrained = RerankerVersion.objects.get(project=small_graded, number=2)
    assert retrained.status == RerankerVersion.Status.ACTIVE  # the task ran eagerly, in minutes
    client.force_login(make_user("lead", role="lead", project=small_graded))
    page = client.get(f"/projects/{small_graded.slug}/dashboard/").content.decode()
    assert "training stalled" in page and "restarted at" in page


def test_a_version_with_a_recent_heartbeat_is_left_training(small_graded):
    running = _stuck_version(small_graded, seconds_since_heartbeat=60)
    assert services.maybe_queue_retrain(project=small_graded) is False
    assert services.train_version(project=small_graded, celery_task_id="another") is None
    running.refresh_from_db()
    assert running.status == RerankerVersion.Status.TRAINING


def test_a_new_training_run_takes_over_a_stalled_version_itself(small_graded):
    stuck = _stuck_version(small_graded, seconds_since_heartbeat=500)
    version = services.train_version(project=small_graded, celery_task_id="fresh")
    stuck.refresh_from_db()
    assert stuck.status == RerankerVersion.Status.FAILED and "training stalled" in stuck.message
    assert version.number == 2 and version.status == RerankerVersion.Status.ACTIVE
