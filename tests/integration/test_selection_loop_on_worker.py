"""End to end on PostgreSQL + Redis with a real worker: a graded page leads to compare tasks,
answering them completes the searches with implied pairs, and crossing the threshold trains and
activates a reranker version on the worker."""

from decimal import Decimal

import pytest

from active_selection import services as selection
from active_selection.models import AnchorSearch, PairSource, PreferencePair
from active_selection.simulator import SimulatedAnnotator, answer_task, store_world
from labeling.models import Project, Task, TaskKind, TaskStatus
from labeling.signals import judgment_recorded
from ranking.ml.synthetic import WorldConfig, make_world
from ranking.models import RerankerVersion
from ranking.tasks import retrain_reranker

from .conftest import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def small_project() -> tuple[Project, dict[int, int]]:
    project = Project.objects.create(
        slug="loop", name="Loop", modalities=["text", "image"], page_size=6, top_band=3,
        budget=Decimal("1000"), retrain_threshold=40,
        training_settings={"epochs": 4, "hidden": 16, "layers": 1, "heads": 2},
    )  # fmt: skip
    world = make_world(
        WorldConfig(n_queries=10, items_per_query=16, modality_shares=(0.5, 0.5), seed=5)
    )
    return project, store_world(project=project, world=world, gold_queries=3)


def answer_open(kind: str, annotator, oracle) -> int:
    answered = 0
    for task in Task.objects.filter(kind=kind, status=TaskStatus.OPEN):
        judgment = answer_task(task=task, annotator_user=annotator, oracle=oracle)
        judgment_recorded.send(sender=Task, judgment_id=judgment.pk, project_id=task.project_id)
        answered += 1
    return answered


def test_graded_pages_lead_to_searches_pairs_and_a_new_version_on_the_worker(
    celery_worker_process, make_user
):
    project, truth = small_project()
    oracle = SimulatedAnnotator(truth, project.max_grade, grade_noise=0.0, compare_noise=0.0)
    annotator = make_user("ann")
    assert selection.create_page_tasks(project=project) == 7
    answer_open(TaskKind.GRADE_PAGE, annotator, oracle)

    wait_for(
        lambda: Task.objects.filter(kind=TaskKind.COMPARE).exists(),
        what="the worker to create compare tasks",
    )
    for _ in range(200):
        if not answer_open(TaskKind.COMPARE, annotator, oracle):
            settled = wait_for(
                lambda: (
                    Task.objects.filter(kind=TaskKind.COMPARE, status=TaskStatus.OPEN).exists()
                    or not AnchorSearch.objects.filter(status=AnchorSearch.Status.OPEN).exists()
                ),
                what="the worker to advance the searches",
            )
            if (
                settled
                and not AnchorSearch.objects.filter(status=AnchorSearch.Status.OPEN).exists()
            ):
                break
    # Per query: text into image's tail and image into text's (7 queries).
    assert AnchorSearch.objects.count() == 14
    assert not AnchorSearch.objects.filter(status=AnchorSearch.Status.OPEN).exists()
    human = PreferencePair.objects.filter(source=PairSource.HUMAN)
    assert human.exists() and all(truth[p.better_id] > truth[p.worse_id] for p in human)
    # Implied pairs lean on the upstream order, which agrees with the truth only in part (tau ~0.75).
    implied = list(PreferencePair.objects.filter(source=PairSource.IMPLIED))
    correct = sum(truth[p.better_id] > truth[p.worse_id] for p in implied)
    assert len(implied) > len(human) and correct / len(implied) > 0.7, (correct, len(implied))

    version = wait_for(
        lambda: RerankerVersion.objects.filter(
            project=project, status=RerankerVersion.Status.ACTIVE
        ).first(),
        timeout=120,
        what="the worker to train and activate a version",
    )
    assert version.labels_used >= project.retrain_threshold
    assert version.metrics["measured_on"] == "gold"
    assert version.weights_path.endswith(".safetensors")


def test_retrain_task_on_the_worker_activates_a_version(celery_worker_process, make_user):
    project, truth = small_project()
    project.strategy = "full"
    project.save()
    selection.create_page_tasks(project=project)
    oracle = SimulatedAnnotator(truth, project.max_grade, grade_noise=0.0, compare_noise=0.0)
    annotator = make_user("ann")
    for task in Task.objects.filter(kind=TaskKind.GRADE_PAGE):
        answer_task(task=task, annotator_user=annotator, oracle=oracle)

    retrain_reranker.apply_async(args=[project.pk], queue=celery_worker_process)

    version = wait_for(
        lambda: (
            RerankerVersion.objects.filter(project=project)
            .exclude(status=RerankerVersion.Status.TRAINING)
            .first()
        ),
        timeout=120,
        what="the worker to finish training",
    )
    assert version.status == RerankerVersion.Status.ACTIVE, version.message
    assert version.gold_ndcg10 is not None and 0 < version.gold_ndcg10 <= 1


def test_an_import_and_a_raised_budget_get_their_pages_planned_by_the_worker(
    celery_worker_process,
):
    import io
    import json

    from labeling.imports import import_project_file
    from labeling.services import update_project_settings

    project = Project.objects.create(
        slug="planned", name="Planned", modalities=["text", "image"], page_size=6, top_band=3,
        # One page of 6 grades at 0.10 once iso_anchor keeps 10% for calibration comparisons.
        budget=Decimal("0.67"),
    )  # fmt: skip
    records = []
    for q in range(3):
        records.append({"type": "query", "id": f"q{q}", "text": f"query {q}", "split": "train"})
        records += [
            {"type": "item", "query": f"q{q}", "id": f"q{q}-{m}{r}", "modality": m,
             "title": f"{m} {r}", "upstream_score": 10 - r}
            for m in ("text", "image") for r in range(4)
        ]  # fmt: skip
    body = "\n".join(json.dumps(record) for record in records).encode()
    import_project_file(project=project, file=io.BytesIO(body), filename="p.jsonl")

    def pages() -> int:
        return Task.objects.filter(project=project, kind=TaskKind.GRADE_PAGE).count()

    wait_for(lambda: pages() == 1, what="the worker to plan the page the budget pays for")
    update_project_settings(project=project, changes={"budget": Decimal("2.0")})  # 1.80 for pages
    wait_for(lambda: pages() == 3, what="the worker to plan the pages a raised budget pays for")
