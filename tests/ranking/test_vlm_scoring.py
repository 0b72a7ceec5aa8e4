"""The vision-language scorer on the database: switches, the scoring task, its cache, baseline."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from PIL import Image

from labeling.errors import PagewiseError
from labeling.models import Item, Query
from labeling.services import update_project_settings
from ranking import services, tasks, vlm_scoring
from ranking.ml.features import TrainPage
from ranking.models import ItemVlmScore, VlmScoringRun
from web import dashboard


def _png(color) -> ContentFile:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 24), color).save(buffer, format="PNG")
    return ContentFile(buffer.getvalue())


@pytest.fixture
def unscored_project(project, settings, tiny_vlm_path):
    """Two queries of text and image items, none with an upstream score."""
    settings.PAGEWISE_VLM_PATH = str(tiny_vlm_path)
    project.page_size = 3
    project.save()
    for q, text in enumerate(["red cat", "blue river"]):
        query = Query.objects.create(project=project, external_id=f"q{q}", text=text)
        for i in range(4):
            item = Item(project=project, query=query, external_id=f"q{q}-t{i}", modality="text")
            item.title = ["red cat photo", "a dog", "the city", "green mountain"][i]
            item.save()
        for i, color in enumerate([(220, 20, 20), (20, 20, 220)]):
            item = Item(project=project, query=query, external_id=f"q{q}-i{i}", modality="image")
            item.image.save(f"q{q}-{i}.png", _png(color), save=True)
    return project


def test_items_without_scores_get_them_from_the_scorer_when_switched_on(
    unscored_project, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        update_project_settings(project=unscored_project, changes={"vlm_upstream": True})
    run = VlmScoringRun.objects.get(project=unscored_project)
    assert run.status == VlmScoringRun.Status.DONE, run.message
    assert run.items_done == run.items_total == run.items_scored == 12
    items = Item.objects.filter(project=unscored_project)
    assert not items.filter(upstream_score__isnull=True).exists()
    assert not items.filter(upstream_rank__isnull=True).exists()
    assert set(items.values_list("is_score_builtin", flat=True)) == {True}
    grades = vlm_scoring.expected_grades(project=unscored_project)
    for item in items:
        assert item.upstream_score == pytest.approx(grades[item.pk])
        assert 0 <= item.upstream_score <= unscored_project.max_grade


def test_a_second_run_reads_only_what_changed(unscored_project):
    unscored_project.vlm_upstream = True
    unscored_project.save()
    assert vlm_scoring.score_items(project=unscored_project).items_scored == 12
    again = vlm_scoring.score_items(project=unscored_project)
    assert (again.items_scored, again.items_done) == (0, 12)
    item = Item.objects.get(external_id="q0-t1")
    before = ItemVlmScore.objects.get(item=item).expected_grade
    item.title = "red cat"
    item.save()
    assert vlm_scoring.score_items(project=unscored_project).items_scored == 1
    assert ItemVlmScore.objects.get(item=item).expected_grade != before


def test_weights_replaced_in_place_are_scored_again_not_read_from_the_cache(
    unscored_project, settings, tiny_vlm_path, tmp_path
):
    from tests.ranking.test_vlm import _copy_model, _perturb_one_tensor

    settings.PAGEWISE_VLM_PATH = str(_copy_model(tiny_vlm_path, tmp_path / "model"))
    first = vlm_scoring.score_items(project=unscored_project)
    before = vlm_scoring.expected_grades(project=unscored_project)
    _perturb_one_tensor(tmp_path / "model")
    second = vlm_scoring.score_items(project=unscored_project)
    assert second.status == "done", second.message
    assert second.scorer != first.scorer
    assert second.items_scored == 12, "new weights, so no score of the old ones is reused"
    after = vlm_scoring.expected_grades(project=unscored_project)
    assert after.keys() == before.keys()
    assert any(abs(after[i] - before[i]) > 1e-6 for i in before)


def test_listwise_mode_scores_pages_and_rescoring_follows_the_page(unscored_project):
    unscored_project.vlm_mode = "listwise"
    unscored_project.vlm_upstream = True
    unscored_project.save()
    run = vlm_scoring.score_items(project=unscored_project)
    assert (run.status, run.mode, run.items_scored) == ("done", "listwise", 12)
    assert ItemVlmScore.objects.filter(mode="listwise").count() == 12
    item = Item.objects.get(external_id="q0-t0")
    item.title = "blue dog"
    item.save()
    # Its page (3 items of the query, in import order) is read again, the other pages are not.
    assert vlm_scoring.score_items(project=unscored_project).items_scored == 3


def test_imported_scores_stay_above_the_scorers(unscored_project):
    imported = Item.objects.get(external_id="q0-t3")
    imported.upstream_score = -50.0
    imported.save()
    unscored_project.vlm_upstream = True
    unscored_project.save()
    vlm_scoring.score_items(project=unscored_project)
    imported.refresh_from_db()
    assert imported.upstream_score == -50.0 and not imported.is_score_builtin
    others = Item.objects.filter(query=imported.query, modality="text").exclude(pk=imported.pk)
    assert all(item.upstream_score < -50.0 for item in others)
    assert imported.upstream_rank == 1


def test_the_task_takes_ids_and_a_run_delivered_twice_does_nothing(unscored_project):
    unscored_project.vlm_baseline = True
    unscored_project.save()
    run = VlmScoringRun.objects.create(project=unscored_project)
    assert tasks.score_project_with_vlm(unscored_project.pk, run.pk) == 12
    assert tasks.score_project_with_vlm(unscored_project.pk, run.pk) == 0
    # Baseline only: the upstream scores are left alone.
    assert not Item.objects.filter(upstream_score__isnull=False).exists()


def test_turning_the_scorer_on_without_a_model_is_refused(project, settings, tmp_path):
    settings.PAGEWISE_VLM_PATH = ""
    with pytest.raises(PagewiseError) as refused:
        update_project_settings(project=project, changes={"vlm_baseline": True})
    assert "PAGEWISE_VLM_PATH" in refused.value.fields["vlm_baseline"][0]
    settings.PAGEWISE_VLM_ROOT = tmp_path
    with pytest.raises(PagewiseError) as refused:
        update_project_settings(
            project=project, changes={"vlm_upstream": True, "vlm_model": "missing"}
        )
    assert "no model directory 'missing'" in refused.value.fields["vlm_model"][0]


def test_a_run_without_a_model_fails_with_the_reason(project, settings):
    settings.PAGEWISE_VLM_PATH = ""
    run = vlm_scoring.score_items(project=project)
    assert run.status == "failed" and "PAGEWISE_VLM_PATH" in run.message


def test_settings_page_shows_the_switches_and_saves_them(client, unscored_project, make_user):
    client.force_login(make_user("boss", role="lead", project=unscored_project))
    url = reverse("lead-settings", args=[unscored_project.slug])
    html = client.get(url).content.decode()
    assert "Vision-language scorer" in html and 'name="vlm_upstream"' in html
    response = client.post(url, {"vlm_upstream": ["false", "true"], "vlm_mode": "listwise"})
    assert response.status_code == 302
    unscored_project.refresh_from_db()
    assert unscored_project.vlm_upstream and unscored_project.vlm_mode == "listwise"
    html = client.post(url, {"vlm_model": "../etc"}).content.decode()
    assert "not a path" in html
    assert client.post(url, {"vlm_upstream": "false"}).status_code == 302
    unscored_project.refresh_from_db()
    assert not unscored_project.vlm_upstream


def test_vlm_zero_shot_is_reported_beside_the_label_free_baselines():
    page = TrainPage.from_items(
        query_id=1,
        query_emb=np.ones(4),
        text_embs=np.eye(4)[:3],
        image_embs=None,
        image_dim=2,
        modalities=[0, 0, 1],
        upstream_scores=[0.9, 0.1, 5.0],
        grades=[0, 1, 2],
        item_ids=[10, 11, 12],
    )
    plain = services.baseline_metrics([page])
    assert "vlm_zero_shot" not in plain
    with_vlm = services.baseline_metrics([page], vlm_grades={10: 0.2, 11: 1.5, 12: 3.1})
    assert with_vlm["vlm_zero_shot"] == pytest.approx(1.0)
    assert with_vlm["zscore_merge"] == plain["zscore_merge"]


def test_a_version_reads_the_scorers_features_distils_it_and_reports_the_baseline(
    project, make_user, settings, tiny_vlm_path
):
    from ranking.ml.synthetic import WorldConfig, make_world
    from ranking.models import RerankerVersion
    from tests.ranking.test_services import grade_every_item

    settings.PAGEWISE_VLM_PATH = str(tiny_vlm_path)
    world = make_world(
        WorldConfig(n_queries=12, items_per_query=6, modality_shares=(0.5, 0.5), seed=5)
    )
    training = {"epochs": 2, "hidden": 16, "layers": 1, "heads": 2, "patience": 2,
                "distill_grid": [0.0, 1.0], "val_fraction": 0.5}  # fmt: skip
    grade_every_item(project, make_user("sim"), world, gold_queries=4, training_settings=training)
    assert vlm_scoring.score_items(project=project).status == "done"
    project.vlm_features = project.vlm_distill = project.vlm_baseline = True
    project.save()
    version = services.train_version(project=project, seed=0)
    assert version.status == RerankerVersion.Status.ACTIVE, version.message
    assert version.training["vlm_features"] is True
    assert set(version.training["distill_val_ndcg10"]) == {"0.0", "1.0"}
    assert version.training["distill_weight"] in (0.0, 1.0)
    assert 0.0 <= version.metrics["baselines"]["vlm_zero_shot"] <= 1.0
    from ranking.ml.model import WholePageReranker

    assert WholePageReranker.read_config(version.weights_path).extra_dim == 5 + 2
    scores = list(services.rerank_scores(project=project, version=version))
    assert len(scores) == 12 * 6 and all(np.isfinite(s) for _, _, s in scores)


def test_the_dashboard_quality_chart_draws_vlm_zero_shot_beside_the_zscore_merge(project):
    from ranking.models import RerankerVersion

    RerankerVersion.objects.create(
        project=project, number=1, status=RerankerVersion.Status.ACTIVE, gold_ndcg10=0.61,
        metrics={"baselines": {"zscore_merge": 0.42, "vlm_zero_shot": 0.55}},
    )  # fmt: skip
    chart = dashboard.dashboard_charts(dashboard.dashboard_summary(project=project))["quality"]
    assert "vlm_zero_shot" in chart and "zscore_merge" in chart


def test_score_vlm_command_scores_now_and_says_why_it_cannot(unscored_project, settings):
    import io

    from django.core.management import CommandError, call_command

    out = io.StringIO()
    call_command("score_vlm", unscored_project.slug, stdout=out)
    assert "12 of 12 items scored (pointwise" in out.getvalue()
    settings.PAGEWISE_VLM_PATH = ""
    with pytest.raises(CommandError, match="PAGEWISE_VLM_PATH"):
        call_command("score_vlm", unscored_project.slug)
