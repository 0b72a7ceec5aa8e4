"""Workers SIGKILLed again and again while they advance searches: no duplicate compare task, no
lost answer, every search finishes (late acknowledgement, idempotent tasks, the beat sweep)."""

import time
from decimal import Decimal

import pytest
from django.db.models import Count

from active_selection import services as selection
from active_selection.models import AnchorSearch, PairSource, PreferencePair, ProbeTask
from active_selection.simulator import SimulatedAnnotator, answer_task, store_world
from labeling.models import Project, Task, TaskKind, TaskStatus
from labeling.signals import judgment_recorded
from ranking.ml.synthetic import WorldConfig, make_world

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_killing_workers_while_searches_advance_loses_and_duplicates_nothing(
    celery_workers, make_user
):
    project = Project.objects.create(
        slug="kill-search", name="Kill search", modalities=["text", "image"], page_size=6, top_band=3,
        budget=Decimal("1000"), retrain_threshold=10**6,
    )  # fmt: skip
    world = make_world(
        WorldConfig(n_queries=8, items_per_query=16, modality_shares=(0.5, 0.5), seed=4)
    )
    truth = store_world(project=project, world=world, gold_queries=0)
    oracle = SimulatedAnnotator(truth, project.max_grade, grade_noise=0.0, compare_noise=0.0)
    annotator = make_user("killer-annotator")
    selection.create_page_tasks(project=project)
    options = {"visibility_timeout": 2, "extra_env": {"PAGEWISE_SWEEP_SECONDS": "2"}, "beat": True}
    worker = celery_workers.start(**options)
    kills = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        open_tasks = list(Task.objects.filter(project=project, status=TaskStatus.OPEN))
        for task in open_tasks:
            judgment = answer_task(task=task, annotator_user=annotator, oracle=oracle)
            judgment_recorded.send(sender=Task, judgment_id=judgment.pk, project_id=project.pk)
        if open_tasks and kills < 6:
            time.sleep(0.15)  # let the worker pick the messages up, then kill it mid-work
            celery_workers.kill(worker)
            kills += 1
            worker = celery_workers.start(**options)
        searches = AnchorSearch.objects.filter(project=project)
        # One search per query and modality. (This compared with 8, never true: every run
        # went on to the deadline.)
        if searches.count() == 16 and not searches.filter(status=AnchorSearch.Status.OPEN).exists():
            break
        time.sleep(0.3)
    # A message a killed worker held comes back within its visibility timeout and a restore scan
    # (1 s): let any late redelivery run before looking for duplicates.
    time.sleep(2 * options["visibility_timeout"] + 2)
    assert kills >= 3
    assert AnchorSearch.objects.filter(project=project).count() == 16
    assert not AnchorSearch.objects.filter(
        project=project, status=AnchorSearch.Status.OPEN
    ).exists()
    # One compare task per search step, each answered and recorded once.
    keys = Task.objects.filter(project=project, kind=TaskKind.COMPARE).values("dedupe_key")
    assert not keys.annotate(n=Count("pk")).filter(n__gt=1).exists()
    assert not ProbeTask.objects.filter(search__project=project, is_recorded=False).exists()
    for search in AnchorSearch.objects.filter(project=project):
        answers = sum(len(anchor["history"]) for anchor in search.state["anchors"])
        assert answers == ProbeTask.objects.filter(search=search).count() == search.probes_answered
    assert PreferencePair.objects.filter(project=project, source=PairSource.HUMAN).count() > 0
