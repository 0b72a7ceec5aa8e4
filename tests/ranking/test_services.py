"""Training a version from the database, activation only when not worse, and the run file."""

from __future__ import annotations

from decimal import Decimal

import pytest

from active_selection import services as selection
from active_selection.simulator import SimulatedAnnotator, answer_task, store_world
from labeling.models import Task, TaskKind, TaskStatus
from ranking import services
from ranking.ml.synthetic import WorldConfig, make_world
from ranking.models import RerankerVersion


def grade_every_item(project, annotator, world, *, gold_queries: int, training_settings: dict):
    """Store `world` in `project` (full strategy) and grade every train item without noise."""
    project.modalities = ["text", "image"]
    project.strategy = "full"
    project.page_size = 20
    project.budget = Decimal("1000")
    project.training_settings = training_settings
    project.save()
    truth = store_world(project=project, world=world, gold_queries=gold_queries)
    selection.create_page_tasks(project=project)
    oracle = SimulatedAnnotator(truth, project.max_grade, grade_noise=0.0, compare_noise=0.0)
    for task in Task.objects.filter(kind=TaskKind.GRADE_PAGE, status=TaskStatus.OPEN):
        answer_task(task=task, annotator_user=annotator, oracle=oracle)
    return project


@pytest.fixture
def graded_world(project, make_user):
    world = make_world(
        WorldConfig(
            n_queries=40,
            items_per_query=16,
            modality_shares=(0.6, 0.4),
            seed=3,
            # Embeddings that carry the grade (little noise): the margin over the baselines must not
            # hang on which queries the validation split happens to draw.
            text_noise=0.1,
            image_noise=0.1,
            image_query_shift=0.1,
        )  # fmt: skip
    )
    settings = {"epochs": 25, "hidden": 32, "layers": 1, "heads": 2, "patience": 25}
    return grade_every_item(
        project, make_user("sim"), world, gold_queries=10, training_settings=settings
    )


def test_trained_version_is_active_and_beats_label_free_baselines_on_gold(graded_world):
    version = services.train_version(project=graded_world, seed=0)
    assert version.status == RerankerVersion.Status.ACTIVE
    assert version.graded_items == 30 * 16
    assert version.metrics["measured_on"] == "gold"
    assert version.training["gold_pages"] == 10
    best_baseline = max(version.metrics["baselines"].values())
    assert version.gold_ndcg10 > best_baseline, (version.gold_ndcg10, version.metrics["baselines"])


def test_worse_version_is_rejected_and_the_active_one_stays(graded_world):
    first = services.train_version(project=graded_world, seed=0)
    RerankerVersion.objects.filter(pk=first.pk).update(gold_ndcg10=1.01)  # unbeatable
    second = services.train_version(project=graded_world, seed=1)
    assert second.status == RerankerVersion.Status.REJECTED
    assert RerankerVersion.objects.get(pk=first.pk).status == RerankerVersion.Status.ACTIVE


def test_training_is_refused_while_another_runs(graded_world):
    RerankerVersion.objects.create(project=graded_world, number=1, celery_task_id="other")
    assert services.train_version(project=graded_world, celery_task_id="mine") is None
    # The same Celery task delivered again (its worker died) takes its own row over.
    assert services.train_version(project=graded_world, celery_task_id="other").number == 1


def test_rerank_command_writes_a_trec_run(graded_world, tmp_path):
    from django.core.management import call_command

    services.train_version(project=graded_world, seed=0)
    out = tmp_path / "run.txt"
    call_command("rerank", graded_world.slug, "--out", str(out))
    lines = out.read_text().splitlines()
    assert len(lines) == 40 * 16
    qid, q0, docid, rank, score, tag = lines[0].split()
    assert (q0, rank) == ("Q0", "1") and tag.startswith("pagewise-v")
    float(score)


def test_retrain_is_queued_exactly_when_new_supervision_passes_the_threshold(
    graded_world, django_capture_on_commit_callbacks
):
    project = graded_world
    total = sum(services.supervision_count(project=project).values())
    assert total > 0
    assert services._supervision_upper_bound(project) >= total
    project.retrain_threshold = total + 1
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.maybe_queue_retrain(project=project) is False
    assert callbacks == []
    project.retrain_threshold = total
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.maybe_queue_retrain(project=project) is True
    assert len(callbacks) == 1


def _page(query_id, grades, intervals=None):
    import numpy as np

    from ranking.ml.features import TrainPage

    n = len(grades)
    return TrainPage(
        query_id=query_id, features=np.zeros((n, 4)), modalities=np.zeros(n),
        upstream_scores=np.arange(n, 0, -1.0), upstream_ranks=np.arange(n), grades=grades,
        grade_intervals=None if intervals is None else np.array(intervals),
    )  # fmt: skip


def test_a_validation_page_reads_unjudged_items_as_their_implied_low_grade_else_not_relevant():
    page = _page("q", [3, -1, -1, 1, -1], intervals=[(-1, -1), (2, 4), (-1, -1), (-1, -1), (0, 0)])
    assert services.validation_page(page).grades.tolist() == [3, 2, 0, 1, 0]
    assert services.validation_page(_page("q", [2, -1, 0])).grades.tolist() == [2, 0, 0]
    assert page.grades.tolist() == [3, -1, -1, 1, -1], "the training page is left as it was"


def test_the_validation_split_is_stable_and_holds_validation_pages():
    pages = [_page(f"q{i}", [2, 1, -1]) for i in range(10)]
    fit, val = services._split_validation(pages, 0.2, seed=0)
    again_fit, again_val = services._split_validation(pages, 0.2, seed=0)
    assert [p.query_id for p in val] == [p.query_id for p in again_val]
    assert len(val) == 2 and len(fit) == 8
    assert {p.query_id for p in fit}.isdisjoint(p.query_id for p in val)
    assert all(p.grades.tolist() == [2, 1, 0] for p in val)
    assert all(p.grades.tolist() == [2, 1, -1] for p in fit)


def test_a_version_trained_on_too_few_pages_to_validate_on_still_finishes(project, make_user):
    # Four labelled train pages leave no validation split: the validation NDCG@10 is undefined,
    # and it is stored as null (JSON has no NaN; the database's JSON columns refuse it).
    world = make_world(WorldConfig(n_queries=6, items_per_query=8, modality_shares=(0.5, 0.5)))
    grade_every_item(
        project, make_user("sim"), world, gold_queries=2,
        training_settings={"epochs": 2, "hidden": 16, "layers": 0},
    )  # fmt: skip

    version = services.train_version(project=project, seed=0)

    version.refresh_from_db()
    assert version.status == RerankerVersion.Status.ACTIVE
    assert version.training["val_pages"] == 0 and version.training["val_ndcg10"] is None
    assert version.gold_ndcg10 is not None
