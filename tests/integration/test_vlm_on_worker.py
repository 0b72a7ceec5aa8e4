"""End to end: turning the vision-language scorer on makes a real worker (Redis, PostgreSQL)
score a project's items and give the unscored ones their upstream scores."""

import io

import pytest
from django.core.files.base import ContentFile
from PIL import Image

from labeling.models import Item, Project, Query
from labeling.services import update_project_settings
from ranking.ml.vlm_tiny import build_tiny_vlm
from ranking.models import ItemVlmScore, VlmScoringRun

from .conftest import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_switching_the_scorer_on_scores_unscored_items_on_a_worker(
    celery_workers, settings, tmp_path
):
    model = build_tiny_vlm(tmp_path / "tiny-vlm")
    settings.PAGEWISE_VLM_PATH = str(model)
    celery_workers.start(extra_env={"PAGEWISE_VLM_PATH": str(model)})
    project = Project.objects.create(slug="vlm", name="VLM", modalities=["text", "image"])
    query = Query.objects.create(project=project, external_id="q", text="red cat")
    for i, title in enumerate(["red cat", "a dog", "the city"]):
        Item.objects.create(
            project=project, query=query, external_id=f"t{i}", modality="text", title=title
        )
    photo = Item(project=project, query=query, external_id="i0", modality="image")
    buffer = io.BytesIO()
    Image.new("RGB", (24, 24), (220, 20, 20)).save(buffer, format="PNG")
    photo.image.save("red.png", ContentFile(buffer.getvalue()), save=True)

    update_project_settings(project=project, changes={"vlm_upstream": True})

    run = wait_for(
        lambda: VlmScoringRun.objects.filter(
            project=project, status__in=["done", "failed"]
        ).first(),
        timeout=120,
        what="the worker to finish the scoring run",
    )
    assert run.status == "done", run.message
    assert (run.items_total, run.items_scored) == (4, 4)
    assert ItemVlmScore.objects.filter(item__project=project).count() == 4
    items = Item.objects.filter(project=project)
    assert not items.filter(upstream_score__isnull=True).exists()
    assert sorted(items.filter(modality="text").values_list("upstream_rank", flat=True)) == [
        1,
        2,
        3,
    ]
